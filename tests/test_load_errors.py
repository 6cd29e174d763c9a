"""Every kind of bad checkpoint fails with one line naming the file and what is wrong with it; a
malicious pickle is refused without running; a symlinked checkpoint is followed (and verified)."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import ttsload
from ttsload.bench.errors import UsageError
from ttsload.bench.models import build, resolve
from ttsload.strategies.base import StrategyError, null_hook
from ttsload.strategies.registry import make_loader

pytestmark = pytest.mark.integration  # every test here builds a model or starts a ttsload child

LOADERS = ["eager", "mmap"]


@pytest.fixture(scope="module")
def tiny(ttsload_home: Path):
    return build("vits-tiny")


@pytest.fixture
def folder(tiny, tmp_path: Path) -> Path:
    """A user's copy of vits-tiny, without manifest: its sha256 is recorded at first sight (after damage)."""
    target = tmp_path / "model"
    shutil.copytree(tiny.checkpoint.parent, target)
    (target / "manifest.json").unlink()
    return target


def checkpoint(folder: Path) -> Path:
    return next(folder.glob("*.pth"))


def load_error(folder: Path, loader: str) -> str:
    with pytest.raises(StrategyError) as info:
        make_loader(loader, "coqui").load(resolve(str(folder)), null_hook)
    message = str(info.value)
    assert "\n" not in message and len(message) < 500
    return message


class Payload:
    """Unpickling this runs `touch marker`: what a malicious checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("loader", LOADERS)
def test_malicious_pickle_is_refused_naming_the_global(folder: Path, tmp_path: Path, loader: str) -> None:
    import torch

    marker = tmp_path / "payload-ran"
    torch.save({"model": Payload(marker)}, checkpoint(folder))
    message = load_error(folder, loader)
    assert "model_file.pth was refused" in message and "posix.system" in message
    assert "weights_only" not in message  # never the advice to unpickle it anyway
    assert not marker.exists()


@pytest.mark.parametrize("loader", LOADERS)
def test_empty_checkpoint_says_it_is_empty(folder: Path, loader: str) -> None:
    checkpoint(folder).write_bytes(b"")
    assert load_error(folder, loader).endswith("model_file.pth is empty (0 bytes): not a checkpoint")


@pytest.mark.parametrize("loader", LOADERS)
def test_truncated_checkpoint_says_so(folder: Path, loader: str) -> None:
    path = checkpoint(folder)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = load_error(folder, loader)
    assert "model_file.pth is not a complete torch checkpoint" in message and "truncated" in message


@pytest.mark.parametrize("loader", LOADERS)
def test_wrong_shape_names_the_tensor_and_both_shapes(folder: Path, loader: str) -> None:
    import torch

    path = checkpoint(folder)
    state = torch.load(path, weights_only=True)
    state["model"]["text_encoder.emb.weight"] = torch.zeros(3, 3)
    torch.save(state, path)
    message = load_error(folder, loader)
    assert "model_file.pth: text_encoder.emb.weight has shape [3, 3] in the file, [65, 32] in the model" in message


def test_invalid_config_json_names_the_config(folder: Path) -> None:
    (folder / "config.json").write_text("{not json")
    assert "config.json" in load_error(folder, "eager")


def test_missing_checkpoint_names_it(folder: Path) -> None:
    files = resolve(str(folder))
    checkpoint(folder).unlink()
    with pytest.raises(StrategyError, match=r"model file missing: .*model_file\.pth"):
        make_loader("mmap", "coqui").load(files, null_hook)


def test_a_symlinked_checkpoint_is_followed_and_verified(folder: Path, tmp_path: Path) -> None:
    """Hugging Face's cache links snapshot files to blobs next to the snapshots: ttsload follows such links and
    checks the target's sha256, so a link swapped to another file is caught like a changed file."""
    snapshot = tmp_path / "models--org--tiny" / "snapshots" / "rev"
    shutil.copytree(folder, snapshot)
    blobs = tmp_path / "models--org--tiny" / "blobs"
    blobs.mkdir()
    path = checkpoint(snapshot)
    blob = blobs / "weights.bin"
    shutil.move(path, blob)
    path.symlink_to(blob)
    files = resolve(str(snapshot))
    make_loader("mmap", "coqui").load(files, null_hook)
    other = blobs / "other.bin"
    data = blob.read_bytes()
    other.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    path.unlink()
    path.symlink_to(other)
    with pytest.raises(StrategyError, match="sha256 mismatch"):
        make_loader("mmap", "coqui").load(files, null_hook)


def test_a_link_out_of_the_folder_is_refused(folder: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.pth"
    shutil.move(checkpoint(folder), elsewhere)
    (folder / "model_file.pth").symlink_to(elsewhere)
    with pytest.raises(UsageError, match=r"model_file\.pth \(role 'checkpoint'\) links to .*outside the model folder"):
        resolve(str(folder))


def test_the_run_records_one_line_and_logs_the_full_text(folder: Path, tmp_path: Path) -> None:
    checkpoint(folder).write_bytes(b"")
    out = tmp_path / "out"
    done = ttsload("run", "--strategy", "singleton", "--model", str(folder), "--requests", "1", "--repeat", "1",
                   "--out", str(out), "--no-history")
    assert done.returncode == 1
    [row] = list(csv.DictReader((out / "summary.csv").open()))
    assert row["status"] == "failed" and row["reason"].endswith("is empty (0 bytes): not a checkpoint")
    logs = "".join(p.read_text() for p in (out / "logs").rglob("*") if p.is_file())
    assert "EOFError" in logs  # torch's own exception, chained, is in the cell's log
