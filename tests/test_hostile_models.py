"""A model folder is untrusted input: files its config names are part of the model (inside the folder, regular,
hashed, read safely first), a pickled side file never runs under any loader, a folder's own manifest never
supplies its hashes, files changed between check and use are refused, ttsload never writes into a model folder.
Crafted configs and manifests are data in tests/data/hostile-inputs/models; binary cases are generated here."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ttsload
from ttsload.bench.errors import UsageError
from ttsload.bench.harness import pagecache
from ttsload.bench.models import build, resolve
from ttsload.strategies.base import StrategyError, null_hook, sha256_of
from ttsload.strategies.registry import loaders, make_loader

pytestmark = pytest.mark.integration  # every case builds a tiny model of its family

CASES = Path(__file__).parent / "data" / "hostile-inputs" / "models"
TINY = {"coqui": "vits-tiny", "coqui-pipeline": "tacotron2-hifigan-tiny", "xtts": "xtts-small"}
LOADERS = [(family, name) for name, by_family in loaders().items() for family in TINY if family in by_family]


class Payload:
    """Unpickling this runs `touch marker`: what a malicious side file does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def built(ttsload_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The tiny fixture of each family, with its inference artifact exported (so `artifact` loads too), in a
    TTSLOAD_HOME of this module's own: other tests resolve the session's fixtures without artifacts."""
    from ttsload.cli.export import export

    home = tmp_path_factory.mktemp("hostile-home")
    for name in TINY.values():  # built once in the session's home, copied here
        folder = build(name).checkpoint.parent
        shutil.copytree(folder, home / "models" / folder.name)
    os.environ["TTSLOAD_HOME"] = str(home)
    try:
        found = {family: build(name) for family, name in TINY.items()}
        for files in found.values():
            export(files)
        yield found
    finally:
        os.environ["TTSLOAD_HOME"] = str(ttsload_home)


def copy_of(files: Any, tmp_path: Path, manifest: bool = False) -> Path:
    """A user's copy of a fixture folder, as downloaded (no manifest: recorded at first sight), or with the
    fixture's manifest (outside TTSLOAD_HOME: its hashes are not trusted)."""
    target = tmp_path / "model"
    shutil.copytree(files.checkpoint.parent, target)
    if not manifest:
        (target / "manifest.json").unlink()
    return target


def edit_config(path: Path, overlay: dict[str, Any]) -> None:
    def merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    config = json.loads(path.read_text())
    merge(config, overlay)
    path.write_text(json.dumps(config))


def save_npy_object(path: Path, value: Any) -> None:
    holder = np.empty((), dtype=object)
    holder[()] = value
    np.save(path, holder, allow_pickle=True)


def one_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message and len(message) < 600
    return message


def test_the_payload_is_live_when_numpy_unpickles_it(tmp_path: Path) -> None:
    """The generated stats file runs its payload under np.load(allow_pickle=True), as Coqui's AudioProcessor
    called it: the tests below would otherwise prove nothing."""
    marker = tmp_path / "ran"
    save_npy_object(tmp_path / "stats.npy", {"mel_mean": Payload(marker)})
    np.load(tmp_path / "stats.npy", allow_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("family, loader", LOADERS)
def test_a_pickled_stats_file_never_runs_under_any_loader(built, tmp_path: Path, family: str, loader: str) -> None:
    folder = copy_of(built[family], tmp_path, manifest=True)  # its roles name every loader's files
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]["config.json"]  # a manifest of the weights only: the edited config is taken as it is
    (folder / "manifest.json").write_text(json.dumps(manifest))
    marker = tmp_path / "payload-ran"
    save_npy_object(folder / "scale_stats.npy", {"mel_mean": Payload(marker)})
    edit_config(folder / "config.json", {"audio": {"stats_path": str(folder / "scale_stats.npy"), "signal_norm": True}})
    files = resolve(str(folder))  # recorded at first sight, payload included: its hash matches, its content not
    with pytest.raises(StrategyError) as info:
        make_loader(loader, family).load(files, null_hook)
    message = one_line(info)
    assert "scale_stats.npy" in message and "audio.stats_path" in message and "posix.system" in message
    assert not marker.exists()


def test_a_run_records_the_refusal_in_one_line_and_the_payload_never_runs(built, tmp_path: Path) -> None:
    folder = copy_of(built["coqui-pipeline"], tmp_path)
    marker = tmp_path / "payload-ran"
    save_npy_object(folder / "scale_stats.npy", {"mel_mean": Payload(marker)})
    edit_config(folder / "config.json", {"audio": {"stats_path": str(folder / "scale_stats.npy")}})
    out = tmp_path / "out"
    done = ttsload("run", "--model", str(folder), "--strategy", "naive", "--requests", "1", "--repeat", "1",
                   "--out", str(out), "--no-history")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [row] = list(csv.DictReader((out / "summary.csv").open()))
    assert row["status"] == "failed" and "scale_stats.npy (audio.stats_path in" in row["reason"]
    assert not marker.exists()


def test_a_pickled_speakers_file_is_refused_naming_the_key(built, tmp_path: Path) -> None:
    import torch

    folder = copy_of(built["coqui"], tmp_path)
    marker = tmp_path / "payload-ran"
    torch.save({"speaker": Payload(marker)}, folder / "speakers.pth")
    edit_config(folder / "config.json", {"model_args": {"speakers_file": "speakers.pth"}})
    with pytest.raises(StrategyError) as info:
        make_loader("mmap", "coqui").load(resolve(str(folder)), null_hook)
    message = one_line(info)
    assert "speakers.pth was refused" in message and "model_args.speakers_file" in message
    assert "weights_only" not in message and not marker.exists()


def test_a_real_stats_file_is_read_safely_and_given_to_coqui(built, tmp_path: Path) -> None:
    folder = copy_of(built["coqui-pipeline"], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    mels, bins = config["audio"]["num_mels"], config["audio"]["fft_size"] // 2 + 1
    stats = {"mel_mean": np.full(mels, 0.5), "mel_std": np.full(mels, 2.0), "linear_mean": np.zeros(bins),
             "linear_std": np.ones(bins), "audio_config": {"num_mels": mels, "fft_size": config["audio"]["fft_size"]}}
    save_npy_object(folder / "scale_stats.npy", stats)
    edit_config(folder / "config.json", {"audio": {"stats_path": "scale_stats.npy", "signal_norm": True}})
    model = make_loader("mmap", "coqui-pipeline").load(resolve(str(folder)), null_hook)
    scaler = model.acoustic.ap.mel_scaler
    assert np.array_equal(scaler.mean_, stats["mel_mean"]) and np.array_equal(scaler.scale_, stats["mel_std"])
    assert model.synthesize("hello there", 1).wav.size > 0


def test_a_stats_file_changed_after_it_was_recorded_is_refused(built, tmp_path: Path) -> None:
    folder = copy_of(built["coqui-pipeline"], tmp_path)
    save_npy_object(folder / "scale_stats.npy", {"mel_mean": np.zeros(2)})
    edit_config(folder / "config.json", {"audio": {"stats_path": "scale_stats.npy"}})
    files = resolve(str(folder))
    save_npy_object(folder / "scale_stats.npy", {"mel_mean": np.ones(2)})
    with pytest.raises(StrategyError) as info:
        make_loader("mmap", "coqui-pipeline").load(files, null_hook)
    assert "sha256 mismatch for" in one_line(info) and "(audio.stats_path in" in str(info.value)


@pytest.mark.parametrize("case", sorted(CASES.glob("configs/*.json")), ids=lambda p: p.stem)
def test_a_crafted_config_is_refused_in_one_line(built, tmp_path: Path, case: Path) -> None:
    spec = json.loads(case.read_text())
    folder = copy_of(built["coqui-pipeline"], tmp_path)
    edit_config(folder / spec["file"], spec["overlay"])
    with pytest.raises(UsageError) as info:
        resolve(str(folder))
    assert spec["expect"] in one_line(info) and spec["file"] in str(info.value)


@pytest.mark.parametrize("make", [lambda p: os.mkfifo(p), lambda p: p.symlink_to("/dev/zero"), lambda p: p.mkdir()],
                         ids=["fifo", "dev-zero-link", "directory"])
def test_a_side_file_that_is_not_a_regular_file_is_refused(built, tmp_path: Path, make) -> None:
    folder = copy_of(built["coqui-pipeline"], tmp_path)
    make(folder / "scale_stats.npy")
    edit_config(folder / "config.json", {"audio": {"stats_path": "scale_stats.npy"}})
    with pytest.raises(UsageError) as info:
        resolve(str(folder))
    message = one_line(info)
    assert "scale_stats.npy" in message and "audio.stats_path" in message
    assert "not a regular file" in message or "outside the model folder" in message


# --- manifests and role paths ---------------------------------------------------------------------------


def test_a_folders_own_manifest_never_supplies_its_hashes(built, tmp_path: Path) -> None:
    """Swap the checkpoint and rewrite the folder's manifest to match: the hash recorded at first sight wins."""
    folder = copy_of(built["coqui"], tmp_path, manifest=True)
    resolve(str(folder))  # first sight
    checkpoint = folder / "model_file.pth"
    data = bytearray(checkpoint.read_bytes())
    data[-100] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["model_file.pth"]["sha256"] = sha256_of(checkpoint)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StrategyError, match="sha256 mismatch for .*model_file.pth"):
        make_loader("mmap", "coqui").load(resolve(str(folder)), null_hook)


def test_a_file_its_folders_manifest_disagrees_with_at_first_sight_is_refused(built, tmp_path: Path) -> None:
    folder = copy_of(built["coqui"], tmp_path, manifest=True)
    checkpoint = folder / "model_file.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:-100])  # damaged before ttsload ever saw the folder
    with pytest.raises(StrategyError, match="sha256 mismatch for .*model_file.pth"):
        make_loader("mmap", "coqui").load(resolve(str(folder)), null_hook)


@pytest.mark.parametrize("case", sorted(CASES.glob("manifests/*.json")), ids=lambda p: p.stem)
def test_a_crafted_manifest_is_refused_in_one_line(built, tmp_path: Path, case: Path) -> None:
    spec = json.loads(case.read_text())
    folder = copy_of(built["coqui"], tmp_path, manifest=True)
    (folder / "manifest.json").write_text(json.dumps(spec["manifest"]))
    with pytest.raises(UsageError) as info:
        resolve(str(folder))
    assert spec["expect"] in one_line(info)


@pytest.mark.parametrize("make", [lambda p: os.mkfifo(p), lambda p: p.symlink_to("/dev/zero"),
                                  lambda p: p.symlink_to("/etc/passwd")], ids=["fifo", "dev-zero", "etc-passwd"])
def test_a_role_that_is_not_a_regular_file_in_the_folder_is_refused(built, tmp_path: Path, make) -> None:
    folder = copy_of(built["coqui"], tmp_path)
    (folder / "model_file.pth").unlink()
    make(folder / "model_file.pth")
    with pytest.raises(UsageError) as info:
        resolve(str(folder))
    message = one_line(info)
    assert "model_file.pth" in message and "role 'checkpoint'" in message


def test_a_link_out_of_a_hugging_face_snapshot_into_its_blobs_is_followed(built, tmp_path: Path) -> None:
    repo = tmp_path / "models--org--tiny"
    snapshot = repo / "snapshots" / "abc"
    shutil.copytree(built["coqui"].checkpoint.parent, snapshot)
    (snapshot / "manifest.json").unlink()
    (repo / "blobs").mkdir()
    shutil.move(snapshot / "model_file.pth", repo / "blobs" / "1234")
    (snapshot / "model_file.pth").symlink_to("../../blobs/1234")
    make_loader("mmap", "coqui").load(resolve(str(snapshot)), null_hook)


@pytest.mark.parametrize("make", [lambda p: os.mkfifo(p), lambda p: p.symlink_to("/dev/zero"), lambda p: None],
                         ids=["fifo", "dev-zero", "missing"])
@pytest.mark.parametrize("mode", pagecache.MODES)
def test_the_page_cache_step_skips_what_is_not_a_regular_file(tmp_path: Path, make, mode: str) -> None:
    path = tmp_path / "model.pth"
    make(path)
    worker = threading.Thread(target=pagecache.prepare, args=([path], mode), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive()


# --- time of check against time of use ------------------------------------------------------------------


def _at_construct(action):
    def hook(event: str, t: float | None = None, **fields: Any) -> None:
        if event == "construct_done":
            action()
    return hook


@pytest.mark.parametrize("loader", ["eager", "mmap"])
def test_a_checkpoint_rewritten_in_place_after_its_check_is_refused(built, tmp_path: Path, loader: str) -> None:
    folder = copy_of(built["coqui"], tmp_path)
    files = resolve(str(folder))
    checkpoint = folder / "model_file.pth"

    def rewrite() -> None:
        with open(checkpoint, "r+b") as handle:  # same size, same name, same inode: only the bytes differ
            handle.seek(-100, os.SEEK_END)
            byte = handle.read(1)
            handle.seek(-100, os.SEEK_END)
            handle.write(bytes([byte[0] ^ 0xFF]))

    with pytest.raises(StrategyError) as info:
        make_loader(loader, "coqui").load(files, _at_construct(rewrite))
    assert "model_file.pth changed after it was verified" in one_line(info)


def test_a_checkpoint_truncated_before_it_is_mapped_is_refused_not_a_sigbus(built, tmp_path: Path) -> None:
    folder = copy_of(built["coqui"], tmp_path)
    files = resolve(str(folder))
    checkpoint = folder / "model_file.pth"
    with pytest.raises(StrategyError) as info:
        make_loader("mmap", "coqui").load(files, _at_construct(lambda: os.truncate(checkpoint, 4096)))
    assert "model_file.pth changed after it was verified" in one_line(info)


# --- ttsload never writes into a model folder, nor into a shared name ------------------------------------


def test_kokoros_empty_checkpoint_is_private_and_removed(tmp_path: Path, monkeypatch) -> None:
    from ttsload.strategies.families.kokoro.loaders import empty_checkpoint

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with empty_checkpoint() as path:
        assert path.parent.parent == tmp_path and path.parent.name != "ttsload-kokoro-empty"
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert list(tmp_path.iterdir()) == []


def test_a_legacy_xtts_checkpoint_is_refused_and_never_rewritten(built, tmp_path: Path) -> None:
    import torch
    from TTS.tts.configs.xtts_config import XttsConfig

    folder = copy_of(built["xtts"], tmp_path)
    checkpoint = folder / "model.pth"
    from TTS.tts.configs.xtts_config import XttsArgs, XttsAudioConfig

    state = torch.load(checkpoint, weights_only=True)
    state["config"] = XttsConfig()  # what original XTTS releases pickled, with their classes' module of then
    moved = {cls: cls.__module__ for cls in (XttsAudioConfig, XttsArgs)}
    try:
        for cls in moved:
            cls.__module__ = "TTS.tts.models.xtts"
        torch.save(state, checkpoint)
    finally:
        for cls, module in moved.items():
            cls.__module__ = module
    before = sha256_of(checkpoint)
    with pytest.raises(StrategyError) as info:
        make_loader("eager", "xtts").load(resolve(str(folder)), null_hook)
    assert "model.pth is a legacy XTTS checkpoint" in one_line(info)
    assert sha256_of(checkpoint) == before


def test_export_refuses_a_folder_that_is_not_its_own_and_replaces_its_own(built, tmp_path: Path) -> None:
    from ttsload.cli.export import export

    user = tmp_path / "user-data"
    user.mkdir()
    (user / "thesis.txt").write_text("keep me")
    with pytest.raises(UsageError) as info:
        export(built["coqui"], user)
    assert "not an earlier export" in one_line(info) and (user / "thesis.txt").read_text() == "keep me"
    (tmp_path / "a-file").write_text("keep me")
    with pytest.raises(UsageError, match="not a folder"):
        export(built["coqui"], tmp_path / "a-file")
    out = tmp_path / "export"
    export(built["coqui"], out)
    first = sha256_of(out / "inference.safetensors")
    export(built["coqui"], out)  # its own earlier export of the same checkpoint: replaced
    assert sha256_of(out / "inference.safetensors") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "export", "user-data"]
