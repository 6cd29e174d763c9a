"""Third-party strategies: a loader and a topology that live outside the repo, in their own installed
distribution, found through the `ttsload.loaders` and `ttsload.topologies` entry points."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ttsload

pytestmark = pytest.mark.integration  # every test here builds a model or starts a ttsload child

PLUGIN = "ttsload_plugin_example"
PYPROJECT = f"""
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "ttsload-plugin-example"
version = "0.0.1"

[project.entry-points."ttsload.loaders"]
plugin-assign = "{PLUGIN}:AssignLoader"

[project.entry-points."ttsload.topologies"]
plugin_resident = "{PLUGIN}:CountingResident"

[tool.setuptools]
py-modules = ["{PLUGIN}"]
"""
# A loader written only against the public contract (strategies/base.py): the phase template gives it
# the events and the sha256 check; it reuses ttsload's Coqui model class only to construct the model.
MODULE = '''
from typing import Any

from ttsload.strategies.base import ModelFiles, PhasedLoader
from ttsload.strategies.families.coqui.loaders import MmapLoader
from ttsload.strategies.topologies import Resident


class AssignLoader(PhasedLoader):
    """safetensors read into a skip-init model: what a third party's new loading technique looks like."""

    name = "plugin-assign"
    summary = "third-party: skip init + safetensors + assign (a plugin)"

    def weight_files(self, files: ModelFiles) -> list:
        return [files.safetensors]

    def import_runtime(self, threads):
        return MmapLoader().import_runtime(threads)

    def construct(self, files: ModelFiles) -> Any:
        from ttsload.strategies.families.coqui import model as coqui
        return coqui.construct(coqui.load_coqui_config(files.config), "skip")

    def fill(self, model: Any, files: ModelFiles) -> Any:
        from safetensors.torch import load_file
        from ttsload.strategies.families.coqui import model as coqui
        model.load_state_dict(load_file(str(files.safetensors)), strict=True, assign=True)
        return coqui.finish_for_inference(model)

    def ready(self, model: Any, files: ModelFiles, info: dict):
        from ttsload.strategies.families.coqui import model as coqui
        return coqui.CoquiModel(model=model, config=model.config, info=info)


class CountingResident(Resident):
    """resident, and says how many requests it served (a topology plugin with its capabilities inherited)."""

    name = "plugin_resident"
    summary = "third-party: resident, counting requests"
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin built and installed as its own distribution (pip --target), on PYTHONPATH for children."""
    source = tmp_path_factory.mktemp("plugin-src")
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / f"{PLUGIN}.py").write_text(textwrap.dedent(MODULE))
    target = tmp_path_factory.mktemp("plugin-site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(target.glob("ttsload_plugin_example-0.0.1.dist-info/entry_points.txt"))
    return target


def with_plugin(path: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH", "")]))}


def test_plugin_strategies_are_listed(plugin_path: Path) -> None:
    listed = ttsload("strategies", env=with_plugin(plugin_path))
    assert listed.returncode == 0, listed.stderr
    assert "plugin-assign" in listed.stdout and "plugin_resident" in listed.stdout


def test_plugin_loader_runs_with_phases_and_same_audio(plugin_path: Path, tiny, tmp_path: Path) -> None:
    """The plugin pair runs like a built-in: phase columns, sha256 checked, audio bit-identical to mmap."""
    out = tmp_path / "out"
    done = ttsload("run", "--strategy", "plugin_resident+plugin-assign,mmap,worker+plugin-assign", "--model",
                   "vits-tiny", "--requests", "2", "--repeat", "1", "--out", str(out), "--no-history",
                   env=with_plugin(plugin_path))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["strategy"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert {r["status"] for r in rows.values()} == {"ok"}
    assert len({r["output_digest"] for r in rows.values()}) == 1  # same audio through plugin and built-in
    for column in ("verify_s", "construct_s", "weights_s", "first_audio_s"):
        assert float(rows["plugin_resident+plugin-assign"][column]) > 0
    events = [json.loads(line) for line in (out / "results.jsonl").open()]
    weights = [e for e in events if e.get("type") == "event" and e.get("event") == "weights_done"
               and e["cell"].startswith("plugin_resident")]
    assert weights and weights[0]["params"] > 0 and weights[0]["dtypes"] == {"float32": weights[0]["params"]}


def test_plugin_loader_refuses_a_tampered_file(plugin_path: Path, tiny_copy: Path, tmp_path: Path) -> None:
    """The sha256 check comes from the template, not from the plugin's own code."""
    with open(tiny_copy / "model.safetensors", "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([last[0] ^ 0xFF]))
    out = tmp_path / "out"
    done = ttsload("run", "--strategy", "resident+plugin-assign", "--model", str(tiny_copy), "--requests", "1",
                   "--repeat", "1", "--out", str(out), "--no-history", env=with_plugin(plugin_path))
    assert done.returncode == 1
    row = next(csv.DictReader((out / "summary.csv").open()))
    assert row["status"] == "failed" and "sha256 mismatch" in row["reason"] and "model.safetensors" in row["reason"]
