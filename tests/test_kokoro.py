"""The Kokoro family on kokoro-tiny (kokoro's real KModel, built at test time): every preset, bit-identical
fp32 strategies, int8 on every Linear and LSTM, strict loading with errors that name what is wrong,
and family detection."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import ttsload
from ttsload.bench.errors import UsageError
from ttsload.bench.models import build, resolve
from ttsload.strategies.base import StrategyError, null_hook
from ttsload.strategies.registry import make_loader

FP32 = ["naive", "singleton", "mmap", "resident+mmap-meta", "subprocess-worker", "prefork+mmap"]
REDUCED = ["quantized", "resident+bf16"]


@pytest.fixture(scope="module")
def kokoro_tiny(ttsload_home: Path):
    return build("kokoro-tiny")


@pytest.fixture
def kokoro_copy(kokoro_tiny, tmp_path: Path) -> Path:
    target = tmp_path / "kokoro"
    shutil.copytree(kokoro_tiny.checkpoint.parent, target)
    (target / "manifest.json").unlink()  # a user's folder: recognised by its files, trusted on first use
    return target


@pytest.fixture(scope="module")
def preset_run(kokoro_tiny, tmp_path_factory) -> dict[str, dict[str, str]]:
    out = tmp_path_factory.mktemp("kokoro-run")
    done = ttsload("run", "--strategy", ",".join([*FP32, *REDUCED]), "--model", "kokoro-tiny", "--requests", "2",
                   "--repeat", "1", "--threads", "1", "--out", str(out), "--no-history", timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["strategy"]: r for r in csv.DictReader((out / "summary.csv").open())}
    rows["_events"] = [json.loads(line) for line in (out / "results.jsonl").open()]
    return rows


@pytest.mark.integration
def test_every_preset_serves_kokoro_and_fp32_audio_is_bit_identical(preset_run) -> None:
    assert {preset_run[s]["status"] for s in [*FP32, *REDUCED]} == {"ok"}
    assert len({preset_run[s]["output_digest"] for s in FP32}) == 1
    assert all(preset_run[s]["output_digest"] != preset_run["naive"]["output_digest"] for s in REDUCED)


@pytest.mark.integration
def test_quantized_converts_every_linear_and_lstm(preset_run, kokoro_tiny) -> None:
    """int8_fraction is exactly the share of parameters in Linear and LSTM layers, counted at build time."""
    expected = kokoro_tiny.meta["linear_fraction"] + kokoro_tiny.meta["lstm_fraction"]
    assert expected > 0.05
    assert float(preset_run["quantized"]["int8_fraction"]) == pytest.approx(expected, rel=1e-9)


@pytest.mark.integration
def test_imports_report_what_each_module_cost(preset_run) -> None:
    imports = [e for e in preset_run["_events"] if e.get("event") == "imports_done" and "import_s_by_module" in e]
    assert imports
    assert set(imports[0]["import_s_by_module"]) == {"torch", "transformers", "kokoro.model"}
    assert all(seconds >= 0 for seconds in imports[0]["import_s_by_module"].values())


@pytest.mark.integration
def test_kokoro_is_imported_without_its_g2p(kokoro_tiny) -> None:
    """The loaders import KModel without kokoro/__init__, so misaki's G2P and spaCy stay out of cold start."""
    import subprocess
    import sys

    code = ("import sys; from ttsload.strategies.families.kokoro import model as kokoro; kokoro.import_runtime(1); "
            "print('misaki' in sys.modules, 'spacy' in sys.modules, 'kokoro.model' in sys.modules)")
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False", "True"]


@pytest.mark.integration
def test_a_folder_is_recognised_as_kokoro(kokoro_copy: Path) -> None:
    files = resolve(str(kokoro_copy))
    assert files.family == "kokoro" and files.extra("voice").name == "voice.pt"


def test_a_folder_of_no_family_names_every_family(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UsageError) as info:
        resolve(str(tmp_path))
    message = str(info.value)
    assert "coqui" in message and "kokoro" in message and "onnx" in message and "model.onnx.json" in message


def _damage(folder: Path, change) -> None:
    import torch

    path = folder / "kokoro.pth"
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


@pytest.mark.integration
@pytest.mark.parametrize("loader", ["eager", "mmap", "mmap-meta"])
def test_a_missing_submodule_is_named(kokoro_copy: Path, loader: str) -> None:
    _damage(kokoro_copy, lambda state: state.pop("predictor"))
    files = resolve(str(kokoro_copy))
    with pytest.raises(StrategyError, match=r"kokoro\.pth: submodules missing: predictor"):
        make_loader(loader, "kokoro").load(files, null_hook)


@pytest.mark.integration
@pytest.mark.parametrize("loader", ["eager", "mmap", "mmap-meta"])
def test_a_tensor_of_the_wrong_shape_is_named_with_both_shapes(kokoro_copy: Path, loader: str) -> None:
    import torch

    def shrink(state):
        weight = state["decoder"]["generator.conv_post.weight_v"]
        state["decoder"]["generator.conv_post.weight_v"] = torch.zeros(weight.shape[0], weight.shape[1] - 1,
                                                                       *weight.shape[2:])

    _damage(kokoro_copy, shrink)
    files = resolve(str(kokoro_copy))
    with pytest.raises(StrategyError) as info:
        make_loader(loader, "kokoro").load(files, null_hook)
    message = str(info.value)
    assert "kokoro.pth" in message and "decoder.generator.conv_post.weight_v" in message
    assert message.count("[") >= 2 and "\n" not in message
