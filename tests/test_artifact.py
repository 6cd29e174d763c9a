"""The inference artifact (`ttsload models export`, the `artifact` loader) and async warm-up, on the tiny VITS."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ttsload
from ttsload.strategies.base import Audio, ModelFiles, StrategyError, null_hook, request_seed

TEXT = "The artifact speaks like the original."
MIN_SNR_DB = 60.0  # folding changes float rounding at most; docs/strategies.md states this bound


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    assert len(reference) == len(other)
    noise = float(np.sum((reference - other) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(reference**2)) / noise)


@pytest.fixture(scope="module")
def exported(tiny: ModelFiles, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ttsload.cli.export import export

    out, _ = export(tiny, tmp_path_factory.mktemp("artifact") / "vits-tiny")
    return out


def synthesize(loader_name: str, files: ModelFiles) -> tuple[Audio, list[tuple[str, dict[str, Any]]]]:
    from ttsload.strategies.registry import make_loader

    events: list[tuple[str, dict[str, Any]]] = []
    loader = make_loader(loader_name, files.family)
    loader.import_runtime(None)
    model = loader.load(files, lambda event, t=None, **fields: events.append((event, fields)))
    return model.synthesize(TEXT, request_seed(TEXT)), events


@pytest.mark.integration
def test_export_writes_a_verified_manifest_and_aligned_tensors(exported: Path, tiny: ModelFiles) -> None:
    from ttsload.strategies import artifact
    from ttsload.strategies.base import sha256_of

    manifest = json.loads((exported / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        assert sha256_of(exported / name) == entry["sha256"]
    section = manifest["artifact"]
    assert section["source_sha256"][tiny.checkpoint.name] == tiny.sha256[tiny.checkpoint.name]
    assert section["folded"] > 0 and section["dropped"][0] == "posterior_encoder"
    assert "duration_predictor.post_flows" in section["dropped"]
    state, realigned = artifact.read(exported / artifact.ARTIFACT_FILE)
    assert realigned == 0 and all(t.data_ptr() % artifact.ALIGN == 0 for t in state.values())
    assert not any(".parametrizations." in key or key.startswith(("posterior_encoder.", "duration_predictor.post_"))
                   for key in state)


@pytest.mark.integration
def test_artifact_loads_strictly_with_no_copy_and_sounds_like_the_original(exported: Path, tiny: ModelFiles) -> None:
    from torch.nn.utils import parametrize

    from ttsload.bench.models import resolve
    from ttsload.bench.models.artifacts import served_only_by_artifact
    from ttsload.strategies.registry import make_loader

    files = resolve(str(exported))  # an artifact folder is a model of its own, for the artifact loader only
    assert served_only_by_artifact(files) and not served_only_by_artifact(tiny)
    loader = make_loader("artifact", files.family)
    loader.import_runtime(None)
    model = loader.load(files, null_hook)
    assert not any(parametrize.is_parametrized(m) for m in model.model.modules())
    assert model.info["realigned_bytes"] == 0
    mapped = [line for line in Path("/proc/self/maps").read_text().splitlines() if line.endswith(str(files.checkpoint))]
    spans = [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in mapped]
    assert all(any(lo <= p.data_ptr() < hi for lo, hi in spans) for p in model.model.parameters())  # no copy
    audio = model.synthesize(TEXT, request_seed(TEXT))
    original, _ = synthesize("mmap", tiny)
    assert snr_db(original.wav, audio.wav) > MIN_SNR_DB


@pytest.mark.integration
def test_a_tree_mismatch_fails_the_strict_load(exported: Path) -> None:
    from ttsload.bench.models import resolve
    from ttsload.strategies import artifact
    from ttsload.strategies.registry import make_loader

    state, _ = artifact.read(exported / artifact.ARTIFACT_FILE)
    state["extra.weight"] = state[next(iter(state))].clone()
    loader = make_loader("artifact", "coqui")
    loader.import_runtime(None)
    model = loader.construct(resolve(str(exported)))
    with pytest.raises(StrategyError, match=r"unexpected \['extra.weight'\]"):
        artifact.assign_strict(model, state)
    del state["extra.weight"], state[next(iter(state))]
    with pytest.raises(StrategyError, match=r"missing"):
        artifact.assign_strict(model, state)


@pytest.mark.integration
def test_the_artifact_is_found_next_to_the_original_and_runs_async(tiny: ModelFiles, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Export's default place is where the loader finds it; `async+artifact` then accepts before ready."""
    from ttsload.bench.models import artifacts, resolve
    from ttsload.cli.export import export

    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(tiny.checkpoint.parent.parent)  # the session's built fixtures
    monkeypatch.setenv("TTSLOAD_HOME", str(home))  # the cell process below inherits it
    out, _ = export(resolve("vits-tiny"))
    assert out.parent == home / "artifacts" and artifacts.attach(tiny, home).extras["artifact"].parent == out
    done = ttsload("run", "--strategy", "async+artifact", "--model", "vits-tiny", "--requests", "1",
                   "--repeat", "1", "--no-history", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    (row,) = csv.DictReader((tmp_path / "run" / "summary.csv").open())
    assert float(row["accept_s"]) < float(row["model_ready_s"]) and row["early_requests"] == "1"


def test_export_refuses_a_family_without_an_artifact_loader(tmp_path: Path) -> None:
    from ttsload.bench.errors import UsageError
    from ttsload.cli.export import export

    files = ModelFiles("voice", tmp_path / "model.onnx.json", tmp_path / "model.onnx", {}, family="onnx")
    with pytest.raises(UsageError, match="no inference artifact for onnx models"):
        export(files, tmp_path / "out")


class GatedLoader:
    """The real eager loader, whose load waits until the test opens the gate."""

    def __init__(self) -> None:
        from ttsload.strategies.registry import make_loader

        self.inner = make_loader("eager")
        self.gate = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def load(self, files: ModelFiles, hook: Any) -> Any:
        self.gate.wait()
        return self.inner.load(files, hook)


@pytest.mark.integration
def test_async_accepts_before_the_model_is_loaded_and_serves_singletons_audio(tiny: ModelFiles) -> None:
    from ttsload.strategies.registry import resolve
    from ttsload.strategies.topologies import AsyncResident

    events: list[str] = []
    loader = GatedLoader()
    server = AsyncResident(loader, tiny, lambda event, t=None, **fields: events.append(event))  # type: ignore[arg-type]
    server.start()
    assert events[0] == "accepting" and "load_start" not in events  # it takes requests, nothing is loaded
    answers: list[Audio] = []
    early = threading.Thread(target=lambda: answers.append(server.synthesize(TEXT, request_seed(TEXT))))
    early.start()
    early.join(timeout=0.5)
    assert early.is_alive() and "weights_done" not in events  # the early request waits for the load
    loader.gate.set()
    early.join()
    server.close()
    assert events.index("model_ready") > events.index("weights_done")
    with resolve("singleton").build(tiny, null_hook) as singleton:
        reference = singleton.synthesize(TEXT, request_seed(TEXT))
    assert np.array_equal(answers[0].wav, reference.wav)


@pytest.mark.integration
def test_async_reports_a_failed_background_load_in_the_request(tiny_copy: Path) -> None:
    from ttsload.bench.models import resolve as resolve_model
    from ttsload.strategies.registry import resolve

    files = resolve_model(str(tiny_copy))
    (tiny_copy / files.checkpoint.name).write_bytes(b"")
    server = resolve("async+mmap").build(files, null_hook)
    server.start()
    with pytest.raises(StrategyError, match="background load failed: sha256 mismatch"):
        server.synthesize(TEXT, 1)
    server.close()
