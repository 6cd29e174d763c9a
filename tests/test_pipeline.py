"""The Coqui pipeline family on tacotron2-hifigan-tiny (Coqui's real Tacotron2 and HiFi-GAN, built at test time):
every preset and the pipeline's own loaders through `ttsload run`, bit-identical fp32 loaders, int8 on Tacotron2's
LSTM/LSTMCell/Linear, int8 conv storage with its quality recorded, per-part phases, the decoder cap in the results,
mismatched vocoder settings refused before any request, and family detection."""

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

PRESETS = ["naive", "singleton", "mmap", "quantized", "subprocess-worker"]
FP32 = ["naive", "singleton", "mmap", "subprocess-worker", "resident+mmap-meta", "resident+safetensors"]
MODEL = "tacotron2-hifigan-tiny"


@pytest.fixture(scope="module")
def pipeline_tiny(ttsload_home: Path):
    return build(MODEL)


@pytest.fixture(scope="module")
def run(pipeline_tiny, tmp_path_factory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("pipeline-run")
    strategies = dict.fromkeys([*PRESETS, *FP32, "resident+int8-storage"])
    done = ttsload("run", "--strategy", ",".join(strategies), "--model", MODEL, "--requests", "1", "--repeat", "1",
                   "--threads", "1", "--out", str(out), "--no-history", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    records = [json.loads(line) for line in (out / "results.jsonl").open()]
    return {"rows": {r["strategy"]: r for r in csv.DictReader((out / "summary.csv").open())}, "records": records}


def _weights_done(run: dict[str, object], strategy: str) -> dict[str, object]:
    for record in run["records"]:
        if record.get("event") == "weights_done" and record["cell"].split("|")[0] == strategy:
            return record
    raise AssertionError(f"no weights_done event for {strategy}")


@pytest.mark.integration
def test_every_strategy_serves_and_fp32_loaders_are_bit_identical(run) -> None:
    rows = run["rows"]
    assert {rows[s]["status"] for s in rows} == {"ok"}, {s: rows[s]["reason"] for s in rows}
    assert len({rows[s]["output_digest"] for s in FP32}) == 1
    assert rows["quantized"]["output_digest"] != rows["naive"]["output_digest"]
    assert rows["resident+int8-storage"]["output_digest"] != rows["naive"]["output_digest"]


@pytest.mark.integration
def test_quantized_converts_tacotrons_rnns_and_linears(run, pipeline_tiny) -> None:
    expected = pipeline_tiny.meta["int8_quantizable_fraction"]
    assert expected > 0.5  # Tacotron2's LSTMCells hold most of its parameters
    assert float(run["rows"]["quantized"]["int8_fraction"]) == pytest.approx(expected, rel=1e-9)


@pytest.mark.integration
def test_every_loader_reports_both_parts_and_the_decoder_cap(run) -> None:
    for strategy in ["naive", "mmap", "resident+safetensors", "resident+int8-storage"]:
        event = _weights_done(run, strategy)
        assert set(event["parts"]) == {"acoustic", "vocoder"}
        for part in event["parts"].values():
            assert part["bytes"] > 0 and part["weights_s"] >= 0 and part["construct_s"] >= 0 and part["file"]
        assert event["max_decoder_steps"] == 8 and event["stop_threshold"] == 2.0 and event["max_mel_frames"] == 16
    assert _weights_done(run, "mmap")["parts"]["vocoder"]["file"] == "vocoder.pth"


@pytest.mark.integration
def test_int8_storage_reports_its_saving_and_its_quality(run) -> None:
    vocoder = _weights_done(run, "resident+int8-storage")["parts"]["vocoder"]
    assert vocoder["file"] == "vocoder_int8.pth" and vocoder["dequant_s"] >= 0
    assert vocoder["saved_bytes"] == vocoder["fp32_bytes"] - vocoder["bytes"] > 0
    assert vocoder["fp32_bytes"] > 1.5 * vocoder["bytes"]  # int8 conv weights (+ float32 biases and scales)
    quality = {r["strategy"]: r for r in run["records"] if r.get("type") == "quality"}
    assert quality["resident+int8-storage"]["identical"] is False
    assert quality["resident+int8-storage"]["snr_db_median"] > 20
    assert quality["mmap"]["identical"] is True


@pytest.mark.integration
def test_every_request_has_the_capped_length(run) -> None:
    audio = float(run["rows"]["singleton"]["audio_s"])
    frames = 16 + 2 * 5  # the decoder cap, plus HiFi-GAN's inference padding of 5 frames each side
    assert audio == pytest.approx(frames * 256 / 22050)


@pytest.fixture
def pipeline_copy(pipeline_tiny, tmp_path: Path) -> Path:
    target = tmp_path / "pipeline"
    shutil.copytree(pipeline_tiny.checkpoint.parent, target)
    (target / "manifest.json").unlink()  # a user's folder: recognised by its files, trusted on first use
    return target


@pytest.mark.integration
def test_a_folder_is_recognised_as_a_pipeline(pipeline_copy: Path) -> None:
    files = resolve(str(pipeline_copy))
    assert files.family == "coqui-pipeline"
    assert files.checkpoint.name == "model.pth" and files.extra("vocoder").name == "vocoder.pth"
    (pipeline_copy / "vocoder.pth").unlink()
    (pipeline_copy / "vocoder_config.json").unlink()
    assert resolve(str(pipeline_copy)).family == "coqui"  # without the vocoder it is a plain Coqui model


@pytest.mark.integration
def test_a_mismatched_vocoder_fails_before_any_request_naming_both_values_and_files(pipeline_copy: Path) -> None:
    config = pipeline_copy / "vocoder_config.json"
    config.write_text(config.read_text().replace('"sample_rate": 22050', '"sample_rate": 24000'))
    files = resolve(str(pipeline_copy))
    with pytest.raises(StrategyError) as info:
        make_loader("mmap", files.family).load(files, null_hook)
    message = str(info.value)
    assert "sample_rate 22050 (acoustic) vs 24000 (vocoder)" in message
    assert str(pipeline_copy / "config.json") in message and str(config) in message and "\n" not in message


def test_a_folder_of_no_family_names_the_pipeline_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UsageError, match="vocoder_config.json"):
        resolve(str(tmp_path))
