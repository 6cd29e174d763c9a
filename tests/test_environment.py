"""The environment nox builds: every native piece works (doctor), Coqui's own server answers with audio through
torchaudio's I/O, the lock satisfies pyproject's ranges, and runs record what the environment resolved to."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from tests.conftest import ttsload
from ttsload.strategies.base import ModelFiles

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.integration
def test_doctor_passes_every_check_in_this_environment():
    done = ttsload("doctor", timeout=300)
    assert done.returncode == 0, done.stderr
    for what in ("import torch, torchaudio, TTS.api", "torchaudio.save + torchaudio.load", "import onnxruntime"):
        assert f"ok: {what}" in done.stdout


def test_torchaudio_saves_and_loads_a_wav_through_torchcodec(tmp_path):
    import torch
    import torchaudio

    wave = torch.linspace(-0.5, 0.5, 4000).reshape(1, -1)
    torchaudio.save(str(tmp_path / "a.wav"), wave, 16000)
    back, rate = torchaudio.load(str(tmp_path / "a.wav"))
    assert rate == 16000 and back.shape == wave.shape
    assert float((back - wave).abs().max()) < 1e-4  # 16-bit PCM quantisation only


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(port: int, body: dict) -> tuple[int, str, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/audio/speech", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


@pytest.fixture
def coqui_server(tiny: ModelFiles, tmp_path):
    """Coqui's own `tts-server` on the tiny VITS, from this environment, on a free loopback port."""
    port = _free_port()
    server = Path(sys.executable).with_name("tts-server")
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen([str(server), "--model_path", str(tiny.checkpoint), "--config_path", str(tiny.config),
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/details", timeout=5).read()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        else:
            pytest.fail(f"tts-server did not come up: {(tmp_path / 'server.log').read_text()[-2000:]}")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.integration
def test_coquis_own_server_answers_openai_speech_with_wav_and_pcm(coqui_server):
    import torchaudio

    status, kind, wav = _post(coqui_server, {"input": "Hello there, this is a test.", "response_format": "wav"})
    assert status == 200 and kind == "audio/wav" and wav[:4] == b"RIFF"
    samples, rate = torchaudio.load(io.BytesIO(wav))  # the server's own path decodes its wav the same way
    assert rate > 0 and samples.shape[1] > rate // 10
    status, kind, pcm = _post(coqui_server, {"input": "Hello there, this is a test.", "response_format": "pcm"})
    assert status == 200 and kind == "audio/L16"
    assert len(pcm) % 2 == 0 and len(pcm) > 2 * rate // 10  # 16-bit mono; VITS draws its own noise, so the
    # clip's length differs from the wav's


def _lock() -> dict[str, str]:
    lines = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and line[0] != "#"]
    return {name.lower(): ver for name, ver in (line.split("==", 1) for line in lines)}


def test_the_lock_satisfies_every_range_in_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _lock()
    requirements = [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["test"]]]
    outside = [f"{r} (lock: {lock[r.name.lower()]})" for r in requirements
               if r.name.lower() in lock and not r.specifier.contains(lock[r.name.lower()], prereleases=True)]
    assert not outside
    assert {r.name.lower() for r in requirements} <= lock.keys()


def test_runs_record_the_versions_this_environment_resolved_to():
    from ttsload.bench.harness import environment

    record = environment.collect()
    for package in ("transformers", "torchcodec", "coqui-tts", "onnxruntime"):
        assert record["resolved"][package] == version(package)
    assert record["packages"]["torchcodec"] == version("torchcodec")
