"""The ONNX Runtime family on vits-tiny-onnx (built here): every preset and ort variant through the CLI,
no torch in the serving process, parity with Piper and with the torch VITS it was exported from, and
one-line errors for damaged voices."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ttsload
from ttsload.strategies import families
from ttsload.strategies.base import ModelFiles, StrategyError, null_hook
from ttsload.strategies.families.onnx import model as onnx
from ttsload.strategies.registry import make_loader

pytestmark = pytest.mark.integration  # every test here builds a model or starts a ttsload child

MODEL = "vits-tiny-onnx"
STRATEGIES = ["naive", "singleton", "mmap", "quantized", "subprocess-worker", "resident+ort", "resident+ort-lean",
              "resident+ort-optimized", "prefork+ort"]
INEXACT = {"quantized"}
TEXT = "Hello world, this is ttsload speaking."
MIN_SNR_DB = 100.0  # FINDINGS B2: torch vs ORT at 138 dB with noise scales 0


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    noise = float(np.sum((reference.astype(np.float64) - other) ** 2))
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / max(noise, 1e-30)))


@pytest.fixture(scope="module")
def voice(ttsload_home: Path) -> ModelFiles:
    from ttsload.bench.models import build

    return build(MODEL)


@pytest.fixture(scope="module")
def model(voice: ModelFiles) -> onnx.OnnxModel:
    return make_loader("ort", "onnx").load(voice, null_hook)


@pytest.fixture(scope="module")
def cli_run(voice: ModelFiles, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("onnx-run") / "all"
    done = ttsload("run", "--strategy", ",".join(STRATEGIES), "--model", MODEL, "--requests", "2", "--repeat", "1",
                   "--no-history", "--out", str(out))
    return out, done


def test_every_preset_and_ort_variant_runs(cli_run):
    out, done = cli_run
    assert done.returncode == 0, done.stderr[-3000:]
    table = {r["strategy"]: r for r in rows(out)}
    assert set(table) == set(STRATEGIES)
    assert all(r["status"] == "ok" and r["model"] == MODEL for r in table.values()), table


def test_fp32_strategies_give_one_digest_and_int8_another(cli_run):
    table = {r["strategy"]: r["output_digest"] for r in rows(cli_run[0])}
    assert len({table[s] for s in STRATEGIES if s not in INEXACT}) == 1, table
    assert table["quantized"] != table["singleton"]


def test_the_family_reports_its_runtime_and_conversion(cli_run):
    events = [json.loads(line) for line in (cli_run[0] / "results.jsonl").read_text().splitlines()]
    events = [e for e in events if e["type"] == "event"]
    imports = [e for e in events if e["event"] == "imports_done"]
    assert imports and all(e["torch_threads"] is None and e["ort"] == "1.32.0" for e in imports), imports[:1]
    int8 = [e for e in events if e["event"] == "weights_done" and "int8_fraction" in e]
    assert int8 and all(0.9 < e["int8_fraction"] <= 1.0 for e in int8)


@pytest.mark.parametrize("strategy", ["resident+ort", "quantized"])
def test_serving_never_imports_torch(voice, strategy):
    code = """if True:
        import json, sys
        from ttsload.strategies.base import ModelFiles, null_hook
        from ttsload.strategies.registry import resolve
        files = ModelFiles.from_json(json.loads(sys.argv[1]))
        with resolve(sys.argv[2]).build(files, null_hook, threads=1) as topology:
            audio = topology.synthesize("no torch here", 0)
        heavy = sorted(m for m in ("torch", "TTS", "trainer", "transformers") if m in sys.modules)
        print(json.dumps({"samples": len(audio.wav), "heavy": heavy}))
    """
    done = subprocess.run([sys.executable, "-P", "-c", code, json.dumps(voice.to_json()), strategy],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["samples"] > 1000 and result["heavy"] == []


def test_piper_loads_the_voice_and_gives_the_same_audio(voice, model):
    from piper import PiperVoice, SynthesisConfig

    piper = PiperVoice.load(str(voice.checkpoint))
    ids = onnx.phoneme_ids(TEXT, model.config)
    assert piper.phonemes_to_ids(piper.phonemize(TEXT.lower())[0]) == ids  # same ids from the text
    theirs = piper.phoneme_ids_to_audio(ids, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=1.0))
    ours = model.synthesize(TEXT, 0).wav
    assert theirs.shape == ours.shape
    assert np.array_equal(theirs, ours) or snr_db(theirs, ours) > MIN_SNR_DB


def test_onnx_matches_the_torch_vits_it_was_exported_from(voice, model):
    from ttsload.bench.models import build
    from ttsload.strategies.families.onnx.build import torch_audio

    assert voice.meta["source"] == {"fixture": "vits-tiny", "seed": 0, "torch_params": 1491720}
    vits = make_loader("eager", "coqui").load(build(voice.meta["source"]["fixture"]), null_hook).model
    for text in (TEXT, "a", ""):  # the last two are the shortest requests (3 ids, and 2 pad ids)
        ids = onnx.phoneme_ids(text, model.config)
        ours, reference = model.run_ids(ids), torch_audio(vits, ids, onnx.SCALES)
        assert ours.shape == reference.shape and ours.size > 0
        assert snr_db(reference, ours) > MIN_SNR_DB, text


def test_runs_are_deterministic_and_the_seed_is_unused(model):
    assert np.array_equal(model.synthesize(TEXT, 1).wav, model.synthesize(TEXT, 2).wav)
    assert model.info["noise_scales"] == [0.0, 1.0, 0.0]


def test_request_ids_follow_piper_with_coqui_blanks(model):
    blank = model.config.id_map["_"]
    assert onnx.phoneme_ids("", model.config) == blank * 2  # padded to the minimum of 2 ids
    assert onnx.phoneme_ids("A\u2603b", model.config) == [*blank, *model.config.id_map["a"], *blank,
                                                           *model.config.id_map["b"], *blank]  # lower, ☃ dropped


@pytest.fixture
def voice_copy(voice: ModelFiles, tmp_path: Path) -> Path:
    """The voice's files without its manifest: ttsload records their sha256 at first sight, so damage
    done here reaches the loader instead of stopping at the sha256 check."""
    target = tmp_path / "voice"
    target.mkdir()
    for path in voice.files():
        shutil.copy(path, target / path.name)
    return target


def test_family_detection_and_roles(voice_copy):
    from ttsload.bench.models import resolve

    assert families.detect(voice_copy).name == "onnx"
    for spec in (voice_copy, voice_copy / "model.onnx"):
        files = resolve(str(spec))
        assert files.family == "onnx" and files.checkpoint.name == "model.onnx"
        assert files.config.name == "model.onnx.json" and files.extra("optimized").name == "model.optimized.onnx"


def test_damaged_voices_fail_before_the_first_request_naming_the_file(voice_copy, tmp_path):
    truncated, mismatched = voice_copy, tmp_path / "mismatched"
    shutil.copytree(voice_copy, mismatched)
    model_file = truncated / "model.onnx"
    model_file.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    config = json.loads((mismatched / "model.onnx.json").read_text())
    config["num_symbols"] += 5
    (mismatched / "model.onnx.json").write_text(json.dumps(config))

    out = tmp_path / "damaged"
    done = ttsload("run", "--strategy", "singleton,mmap", "--model", f"{truncated},{mismatched}", "--requests", "1",
                   "--repeat", "1", "--no-history", "--out", str(out))
    assert done.returncode == 1
    table = rows(out)
    assert len(table) == 4 and all(r["status"] == "failed" for r in table)
    for row in table:
        assert "\n" not in row["reason"]
        if row["model"] == str(truncated):
            assert str(model_file) in row["reason"] and "truncated" in row["reason"], row["reason"]
        else:
            assert str(mismatched / "model.onnx.json") in row["reason"] and "num_symbols" in row["reason"]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert not [r for r in records if r["type"] == "request"]


def test_ort_optimized_without_its_graph_is_a_clear_error(voice_copy):
    from ttsload.bench.models import resolve

    (voice_copy / "model.optimized.onnx").unlink()
    with pytest.raises(StrategyError, match="has no optimized file"):
        make_loader("ort-optimized", "onnx").load(resolve(str(voice_copy)), null_hook)
