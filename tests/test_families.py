"""Model families as entry points: the built-ins register like a plugin, and a third party's family
(docs/examples/tone-family, the walk-through's own files) installed as its own distribution is found,
recognises its folders, builds its fixture and runs; a family claiming a taken name, or failing to
import, is left out with one line and the run goes on."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ttsload
from ttsload.strategies.families import Family, Fixture

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "tone-family"
# Two more entry points beside the example's own: one claims a built-in's name, one cannot be imported.
BAD_ENTRIES = '''
coqui = "ttsload_tone.impostor:FAMILY"
broken = "ttsload_tone_missing:FAMILY"
'''
IMPOSTOR = '''
import dataclasses

from ttsload_tone import FAMILY as TONE

FAMILY = dataclasses.replace(TONE, name="coqui", fixtures=())
'''


def test_built_in_families_come_from_the_entry_points() -> None:
    """Only ttsload's own entry points are looked at: a family plugin installed beside it changes nothing here."""
    from importlib.metadata import entry_points

    from ttsload.strategies import families

    own = [entry for entry in entry_points(group=families.GROUP) if entry.dist and entry.dist.name == "ttsload"]
    assert {entry.name for entry in own} == {"coqui", "coqui-pipeline", "kokoro", "onnx", "xtts"}
    assert all(families.families()[entry.name] is entry.load() for entry in own)
    assert not [e for e in families.plugin_errors() if e == families.STALE or "(distribution ttsload)" in e]


def _family(name: str, *fixtures: Fixture) -> Family:
    return Family(name=name, summary="toy", looks_for="nothing", detect=lambda folder: False,
                  roles=lambda folder, chosen: {}, loaders=list, fixtures=fixtures)


CHIRP = _family("chirp", Fixture("chirp-tiny", "chirp", "toy sweep"))
WRONG = _family("chirp", Fixture("chirp-tiny", "chirp", "toy sweep", family="coqui"))


def test_a_fixture_is_its_declaring_familys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixture that names no family is the family's that declares it; one naming another is refused with
    the fix, and `unknown model fixture` then says why."""
    from importlib.metadata import EntryPoint, entry_points

    from ttsload.bench import models
    from ttsload.strategies import families

    assert [f.family for f in CHIRP.fixtures] == ["chirp"]
    real = list(entry_points(group=families.GROUP))
    planted = [EntryPoint("chirp", f"{__name__}:WRONG", families.GROUP)]
    monkeypatch.setattr(families, "entry_points", lambda group: [*real, *planted])
    families._registry.cache_clear()
    try:
        [error] = [e for e in families.plugin_errors() if "'chirp'" in e]
        assert error.endswith("refused: fixture 'chirp-tiny' has family='coqui'; set family='chirp'")
        assert models.unknown_fixture("chirp-tiny").endswith("set family='chirp')")
    finally:
        families._registry.cache_clear()


def test_a_model_that_is_not_a_torch_module_needs_describe(tmp_path: Path) -> None:
    """Left to the torch default, describe() fails the load in one line naming the fix, not an AttributeError."""
    import hashlib

    from ttsload.strategies.base import ModelFiles, PhasedLoader, StrategyError, null_hook

    class NoDescribe(PhasedLoader[dict]):  # type: ignore[type-arg]
        name, summary, family = "no-describe", "toy", "chirp"

        def construct(self, files: ModelFiles) -> dict:  # type: ignore[type-arg]
            return json.loads(files.config.read_text())

        def fill(self, model: dict, files: ModelFiles) -> dict:  # type: ignore[type-arg]
            return {**model, "wave": files.checkpoint.read_bytes()}

        def ready(self, model: dict, files: ModelFiles, info: dict) -> object:  # type: ignore[type-arg, override]
            return model

    (tmp_path / "chirp.json").write_text("{}")
    (tmp_path / "chirp.bin").write_bytes(b"\0" * 16)
    files = ModelFiles("chirp", tmp_path / "chirp.json", tmp_path / "chirp.bin", family="chirp",
                       sha256={p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()})
    with pytest.raises(StrategyError) as raised:
        NoDescribe().load(files, null_hook)
    assert "\n" not in str(raised.value)
    assert "NoDescribe.describe: a dict is not a torch module" in str(raised.value)
    assert "override describe(model)" in str(raised.value)


def test_a_stale_install_says_to_reinstall(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An install whose metadata predates the entry points finds no family: every message says why."""
    from ttsload.strategies import families

    monkeypatch.setattr(families, "entry_points", lambda group: [])
    families._registry.cache_clear()
    try:
        assert families.families() == {} and families.plugin_errors() == [families.STALE]
        assert families.no_family_message(tmp_path).endswith("(reinstall it: pip install -e .)")
    finally:
        families._registry.cache_clear()


@pytest.fixture(scope="module")
def tone_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example family with the two bad entries added, built and installed with pip --target."""
    source = tmp_path_factory.mktemp("tone-src") / "tone-family"
    shutil.copytree(EXAMPLE, source)
    (source / "ttsload_tone" / "impostor.py").write_text(IMPOSTOR)
    pyproject = source / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('tone = "ttsload_tone:FAMILY"\n',
                                                       'tone = "ttsload_tone:FAMILY"' + BAD_ENTRIES))
    target = tmp_path_factory.mktemp("tone-site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def with_site(path: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH", "")]))}


@pytest.mark.integration
def test_plugin_family_is_found_and_a_taken_name_refused(tone_site: Path) -> None:
    listed = ttsload("strategies", env=with_site(tone_site))
    assert listed.returncode == 0, listed.stderr
    assert "loaders for tone (toy: one stored waveform period, repeated per character):" in listed.stdout
    assert "tone-npy" in listed.stdout
    warnings = [line for line in listed.stderr.splitlines() if line.startswith("ttsload: warning: family plugin")]
    assert len(warnings) == 2, listed.stderr
    assert any("'coqui'" in w and "refused: family name 'coqui' is already taken" in w for w in warnings)
    assert any("'broken'" in w and "ModuleNotFoundError" in w for w in warnings)
    # the built-in Coqui family is still the one its name means
    assert "loaders for coqui (Coqui TTS models through Coqui's own classes" in listed.stdout


@pytest.mark.integration
def test_plugin_family_builds_recognises_and_runs(tone_site: Path, ttsload_home: Path, tmp_path: Path) -> None:
    env = with_site(tone_site)
    models = ttsload("models", "list", env=env)
    assert models.returncode == 0 and "tone-tiny" in models.stdout, models.stderr
    out = tmp_path / "out"
    done = ttsload("run", "--strategy", "singleton,naive", "--model", "tone-tiny", "--requests", "2", "--repeat", "1",
                   "--out", str(out), "--no-history", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert {r["status"] for r in rows} == {"ok"} and len(rows) == 2
    assert len({r["output_digest"] for r in rows}) == 1  # the same audio through both strategies
    [run] = [r for r in map(json.loads, (out / "results.jsonl").open()) if r.get("type") == "run"]
    assert len(run["environment"]["family_plugin_errors"]) == 2  # the left-out plugins are on record
    # a user's folder of the family: a copy of the built fixture, recognised by its files
    built = next((ttsload_home / "models").glob("tone-tiny-*"))
    folder = tmp_path / "my-tone"
    folder.mkdir()
    for name in ("tone.json", "tone.npy"):
        shutil.copy(built / name, folder / name)
    done = ttsload("run", "--strategy", "singleton", "--model", str(folder), "--requests", "1", "--repeat", "1",
                   "--out", str(tmp_path / "out2"), "--no-history", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
