"""Fixtures are real Coqui models, rebuilt byte for byte, described by a manifest, and resolvable by path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ttsload.bench import models
from ttsload.bench.errors import UsageError
from ttsload.strategies.base import sha256_of


@pytest.mark.integration
def test_manifest_records_sha256_bytes_and_params(tiny):
    manifest = json.loads((tiny.checkpoint.parent / "manifest.json").read_text())
    for name in ("model_file.pth", "config.json", "model.safetensors"):
        entry = manifest["files"][name]
        assert entry["sha256"] == sha256_of(tiny.checkpoint.parent / name)
        assert entry["bytes"] == (tiny.checkpoint.parent / name).stat().st_size
    assert 1_000_000 < manifest["params"] < 3_000_000
    assert manifest["fixture"]["architecture"] == "vits"


@pytest.mark.integration
def test_rebuilding_gives_identical_bytes(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("TTSLOAD_HOME", str(tmp_path))
    again = models.build("vits-tiny")
    assert again.checkpoint != tiny.checkpoint
    assert again.sha256 == tiny.sha256


@pytest.mark.integration
def test_checkpoint_is_coqui_format(tiny):
    import torch

    state = torch.load(tiny.checkpoint, weights_only=True, map_location="cpu")
    assert {"model", "config", "step", "epoch"} <= set(state)
    assert state["config"]["model"] == "vits"


@pytest.mark.integration
def test_resolve_folder_and_checkpoint_file(tiny):
    by_folder = models.resolve(str(tiny.checkpoint.parent))
    by_file = models.resolve(str(tiny.checkpoint))
    assert by_folder.checkpoint == by_file.checkpoint == tiny.checkpoint
    assert by_folder.sha256 == tiny.sha256


@pytest.mark.integration
def test_external_folder_without_manifest_is_recorded_on_first_use(tiny_copy: Path):
    (tiny_copy / "manifest.json").unlink()
    renamed = tiny_copy / "best_model.pth"
    (tiny_copy / "model_file.pth").rename(renamed)
    (tiny_copy / "model.safetensors").unlink()
    files = models.resolve(str(tiny_copy))
    assert files.checkpoint == renamed
    assert files.sha256["best_model.pth"] == sha256_of(renamed)
    assert not (tiny_copy / "manifest.json").exists()  # the user's folder is never written to


@pytest.mark.parametrize(
    "make_spec, message",
    [
        (lambda d: str(d / "nowhere"), "model not found"),
        (lambda d: "vits-huge", "model not found"),
        (lambda d: str(d), "no model family recognises the files"),
    ],
)
def test_bad_model_paths_give_one_clear_line(tmp_path, make_spec, message):
    with pytest.raises(UsageError, match=message) as info:
        models.resolve(make_spec(tmp_path))
    assert "\n" not in str(info.value)


@pytest.mark.integration
def test_several_checkpoints_must_be_chosen(tiny_copy: Path):
    os.link(tiny_copy / "model_file.pth", tiny_copy / "other.pth")
    (tiny_copy / "model_file.pth").rename(tiny_copy / "a.pth")
    (tiny_copy / "manifest.json").unlink()
    with pytest.raises(UsageError, match="several checkpoints"):
        models.resolve(str(tiny_copy))
