"""The XTTS family on xtts-small (Coqui's real Xtts, built at test time): every preset plus mmap-meta and
safetensors through `ttsload run`, bit-identical fp32 loaders, the cap in every result, GPT-2 Conv1D
converted to Linear without changing a number so int8 reaches the GPT, one-line errors for a missing
vocab or speakers file, and family detection."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import ttsload
from ttsload.bench.errors import UsageError
from ttsload.bench.models import build, resolve
from ttsload.strategies import families
from ttsload.strategies.base import StrategyError, null_hook
from ttsload.strategies.registry import make_loader

pytestmark = pytest.mark.integration  # every test here builds a model or starts a ttsload child

FP32 = ["naive", "singleton", "mmap", "subprocess-worker", "prefork+mmap", "resident+mmap-meta", "resident+safetensors"]
REDUCED = ["quantized", "resident+bf16"]  # int8-bf16 and bf16: their own forward hooks put float32 back for Coqui
CAP = 8  # xtts-small's max_new_tokens


@pytest.fixture(scope="module")
def xtts_small(ttsload_home: Path):
    return build("xtts-small")


@pytest.fixture
def xtts_copy(xtts_small, tmp_path: Path) -> Path:
    target = tmp_path / "xtts"
    shutil.copytree(xtts_small.checkpoint.parent, target)
    (target / "manifest.json").unlink()  # a user's folder: recognised by its files, trusted on first use
    return target


@pytest.fixture(scope="module")
def preset_run(xtts_small, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("xtts-run")
    done = ttsload("run", "--strategy", ",".join([*FP32, *REDUCED]), "--model", "xtts-small", "--requests", "1",
                   "--repeat", "1", "--threads", "1", "--out", str(out), "--no-history", timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    rows: dict = {r["strategy"]: r for r in csv.DictReader((out / "summary.csv").open())}
    rows["_events"] = [json.loads(line) for line in (out / "results.jsonl").open()]
    return rows


def test_every_preset_serves_xtts_and_fp32_audio_is_bit_identical(preset_run) -> None:
    assert {preset_run[s]["status"] for s in [*FP32, *REDUCED]} == {"ok"}
    assert len({preset_run[s]["output_digest"] for s in FP32}) == 1
    assert all(preset_run[s]["output_digest"] != preset_run["naive"]["output_digest"] for s in REDUCED)


def test_every_result_records_the_cap_and_the_audio_is_that_long(preset_run, xtts_small) -> None:
    loads = [e for e in preset_run["_events"] if e.get("event") == "weights_done"]
    assert len(loads) >= len(FP32) + len(REDUCED)
    assert {e["max_new_tokens"] for e in loads} == {CAP} == {xtts_small.meta["max_new_tokens"]}
    for strategy in [*FP32, *REDUCED]:
        assert float(preset_run[strategy]["audio_s"]) == pytest.approx(xtts_small.meta["audio_s_per_request"])


def test_quantized_reaches_the_gpt(preset_run, xtts_small) -> None:
    """int8 converts the GPT's Conv1D layers first: its fraction is the share of Linear + Conv1D parameters."""
    quantized = [e for e in preset_run["_events"] if e.get("event") == "weights_done" and "int8_fraction" in e]
    assert quantized and quantized[0]["conv1d_to_linear"] == 2 * 4  # 2 GPT-2 blocks: c_attn, c_proj, c_fc, c_proj
    fraction = float(preset_run["quantized"]["int8_fraction"])
    assert fraction > 0
    assert fraction == pytest.approx(xtts_small.meta["int8_convertible_fraction"], rel=1e-9)


def test_conv1d_to_linear_computes_the_same(xtts_small) -> None:
    """The GPT-2 of xtts-small before and after the conversion, on the same input, before any quantization."""
    import torch
    from transformers.pytorch_utils import Conv1D

    from ttsload.strategies.precision import conv1d_to_linear

    threads = torch.get_num_threads()
    loader = make_loader("mmap-meta", "xtts")
    loader.runtime_phase(1)  # sets this process's torch threads: restored below, later tests compare against them
    try:
        model = loader.load(xtts_small, null_hook).model
    finally:
        torch.set_num_threads(threads)
    gpt = model.gpt.gpt
    inputs = torch.randn(1, 40, gpt.config.n_embd, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        before = gpt(inputs_embeds=inputs).last_hidden_state
        assert conv1d_to_linear(model) == 8
        after = gpt(inputs_embeds=inputs).last_hidden_state
    assert not any(isinstance(m, Conv1D) for m in model.modules())
    assert model.gpt.gpt_inference.transformer is gpt  # the shared GPT-2 was converted once, for both parents
    torch.testing.assert_close(after, before, rtol=1e-6, atol=1e-6)


def test_a_folder_is_recognised_as_xtts_not_generic_coqui(xtts_copy: Path) -> None:
    assert families.detect(xtts_copy).name == "xtts"
    files = resolve(str(xtts_copy))
    assert files.family == "xtts" and files.checkpoint.name == "model.pth"
    assert files.extra("vocab").name == "vocab.json" and files.extra("speakers").name == "speakers_xtts.pth"


@pytest.mark.parametrize(("missing", "purpose"), [("vocab.json", "tokenizer"), ("speakers_xtts.pth", "speaker")])
def test_a_missing_side_file_is_named_with_what_it_is_for(xtts_copy: Path, missing: str, purpose: str) -> None:
    (xtts_copy / missing).unlink()
    with pytest.raises(UsageError) as info:
        resolve(str(xtts_copy))
    message = str(info.value)
    assert missing in message and purpose in message and "\n" not in message


def test_a_loader_given_no_vocab_says_what_it_is_for(xtts_small) -> None:
    from dataclasses import replace

    files = replace(xtts_small, extras={"speakers": xtts_small.extra("speakers")})
    with pytest.raises(StrategyError, match=r"no vocab\.json .*tokenizer") as info:
        make_loader("mmap", "xtts").load(files, null_hook)
    assert "\n" not in str(info.value)


def test_the_cli_refuses_a_folder_without_vocab_in_one_line(xtts_copy: Path, tmp_path: Path) -> None:
    (xtts_copy / "vocab.json").unlink()
    done = ttsload("run", "--strategy", "mmap", "--model", str(xtts_copy), "--requests", "1", "--repeat", "1",
                   "--out", str(tmp_path / "out"), "--no-history", timeout=300)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "vocab.json" in line]
    assert len(lines) == 1 and "tokenizer" in lines[0]


def test_int8_frees_the_float_layers_it_replaced(xtts_small) -> None:
    """torch.ao's qconfig keeps a closure over each float layer it quantizes: a reference cycle. Unless the
    conversion collects it, XTTS's fp32 GPT weights stay resident beside the int8 ones (1.6 GiB on xtts).
    The automatic collector is off here, so only the conversion's own collection can free them."""
    import gc
    import weakref

    import torch

    from ttsload.strategies.precision import conv1d_to_linear, to_int8_dynamic

    threads = torch.get_num_threads()
    loader = make_loader("mmap-meta", "xtts")
    loader.runtime_phase(1)
    try:
        model = loader.load(xtts_small, null_hook).model
    finally:
        torch.set_num_threads(threads)
    conv1d_to_linear(model)  # the Linear layers int8 will replace (converting again below finds none)
    float_layers = [weakref.ref(m) for m in model.gpt.gpt.modules() if type(m) is torch.nn.Linear]
    assert len(float_layers) >= 8
    gc.disable()
    try:
        info = to_int8_dynamic(model)
        alive = sum(ref() is not None for ref in float_layers)
    finally:
        gc.enable()
    assert alive == 0, f"{alive} of {len(float_layers)} replaced float layers still alive after the conversion"
    assert info["int8_layers"] > 0 and info["collected"] > 0
