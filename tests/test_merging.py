"""Fan-out on planted folders: merge reads a torn line in the middle (a killed write, then a `--resume`) as the
store does and keeps every file a run wrote without name collisions; run ids never collide; a crash has its
own exit code."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import RESULTS, cli
from tests.recordings import PLAN
from ttsload.bench import artefacts, merging, results
from ttsload.bench.cells import CellKey
from ttsload.bench.errors import EXIT_CRASH, EXIT_FAILED
from ttsload.bench.results import ResultStore, load_cell_rows, read_lines
from ttsload.cli import main


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    shutil.copytree(RESULTS / "shards", tmp_path / "root")
    return [tmp_path / "root" / "shard0", tmp_path / "root" / "shard1"]


def planned() -> list[str]:
    return sorted(line.split("\t")[2] for line in (RESULTS / "shards" / PLAN).read_text().splitlines()
                  if line and not line.startswith(("#", "shard")))


def test_a_torn_line_left_by_a_killed_write_then_a_resume_is_left_out_and_named(shards, tmp_path):
    folder = shards[0]
    path = folder / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines = lines[:max(i for i, line in enumerate(lines) if '"type": "cell"' in line) + 1]
    last = lines[-1]  # the shard's last cell record: the run was killed half-way through its write
    path.write_text("".join(lines[:-1]) + last[: len(last) // 2])
    run = next(r for _, r in read_lines(RESULTS / "shards" / "shard0").records if r["type"] == "run")
    again = [{**run, "run_id": "resumed"}, {**load_cell_rows(RESULTS / "shards" / "shard0")[-1], "run_id": "resumed"}]
    ResultStore(folder).append([{k: v for k, v in r.items() if k != "schema"} for r in again])  # --resume
    torn = read_lines(folder).malformed
    assert torn == [len(lines)] and len(path.read_text().splitlines()) == len(lines) + 2  # torn line in the middle
    merged = merging.merge(shards, tmp_path / "merged")  # no JSONDecodeError: the store's reader, line for line
    assert merged.left_out == [f"{path} line {len(lines)}"]
    assert f"left out (torn or malformed): {path} line {len(lines)}" in merging.describe(merged)
    assert sorted(CellKey.of_row(r).id for r in load_cell_rows(tmp_path / "merged")) == planned()
    assert read_lines(tmp_path / "merged").malformed == []
    done = cli("merge", *map(str, shards), "--out", str(tmp_path / "again"))
    assert done.returncode == 0 and "Traceback" not in done.stderr and f"{path} line {len(lines)}" in done.stdout


def plant(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def tree(folder: Path) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in artefacts.files(folder).items()}


def test_merge_keeps_every_file_a_run_wrote_and_never_two_under_one_name(shards, tmp_path):
    same = {"profiles/naive__vits-tiny__single/memray/flame.html": b"<html>one profile</html>",
            "dumps/naive__vits-tiny__single__0/stacks-123.txt": b"Thread 1 (idle)"}
    plant(shards[0], {**same, "audio/naive__vits-tiny/0.npy": b"audio of class A",
                      "report/report.html": b"a shard's own report", "notes/extra.txt": b"anything else"})
    plant(shards[1], {**same, "audio/naive__vits-tiny/0.npy": b"audio of class B"})
    logs = {name for folder in shards for name in tree(folder) if name.startswith("logs/")}
    merged = merging.merge(shards, tmp_path / "merged")
    got = tree(tmp_path / "merged")
    assert logs and logs <= set(got) and {**same, "notes/extra.txt": b"anything else"}.items() <= got.items()
    assert "report/report.html" not in got and "audio/naive__vits-tiny/0.npy" not in got  # rebuilt; kept apart
    audio = {name: data for name, data in got.items() if name.startswith("audio/")}
    assert sorted(audio.values()) == [b"audio of class A", b"audio of class B"]
    assert all(name.startswith("audio/naive__vits-tiny/0@20261202-") and name.endswith(".npy") for name in audio)
    assert merged.split == ["audio/naive__vits-tiny/0.npy"] and merged.files == len(got)
    assert "kept apart (inputs differ): audio/naive__vits-tiny/0.npy" in merging.describe(merged)
    merging.merge([shards[1], tmp_path / "merged", shards[0]], tmp_path / "merged")  # again, into itself
    merging.merge(list(reversed(shards)), tmp_path / "reversed")
    assert tree(tmp_path / "merged") == got == tree(tmp_path / "reversed")  # idempotent, order-independent


def test_merge_follows_no_link_in_its_output(shards, tmp_path):
    plant(shards[0], {"profiles/p/memray/flame.html": b"x"})
    elsewhere, out = tmp_path / "elsewhere", tmp_path / "merged"
    elsewhere.mkdir()
    out.mkdir()
    (out / "profiles").symlink_to(elsewhere)
    done = cli("merge", *map(str, shards), "--out", str(out))
    assert done.returncode == 2 and "profiles is a symbolic link: refusing to copy" in done.stderr
    assert list(elsewhere.iterdir()) == [] and not (out / "results.jsonl").exists()


def test_run_ids_are_unique_across_machines_and_runs_started_in_one_second(monkeypatch):
    monkeypatch.setattr(time, "gmtime", lambda *_: time.struct_time((2026, 12, 3, 7, 30, 0, 3, 337, 0)))
    ids = [results.new_run_id(machine) for machine in ("node-a", "node-a", "node/b c") for _ in range(50)]
    assert len(set(ids)) == len(ids)  # one second, one machine name: still distinct (p of a clash ~ 1e-6)
    assert re.fullmatch(r"20261203T073000Z-node-a-[0-9a-f]{8}", ids[0])
    assert ids[-1].startswith("20261203T073000Z-node_b_c-")
    assert re.fullmatch(r"20261203T073000Z-n1-[0-9a-f]{8}-s2of3", results.new_run_id("n1", "2/3"))


def test_a_crash_exits_with_its_own_code_never_the_failed_cells_one(monkeypatch, shards, tmp_path):
    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(main, "cmd_merge", broken)
    done = cli("merge", *map(str, shards), "--out", str(tmp_path / "m"))
    assert done.returncode == EXIT_CRASH != EXIT_FAILED
    assert "KeyError: 'a bug'" in done.stderr and done.stderr.endswith(f"ttsload: crashed (a bug in ttsload, not a "
                                                                       f"failed cell): exit {EXIT_CRASH}\n")
