"""Re-record tests/data/results/ with real `ttsload run`s of the tiny VITS fixture (tests/data/README.md).

    python tests/data/regenerate.py [NAME ...]     # or: nox -s test-data [-- NAME ...]

Builds vits-tiny into a private TTSLOAD_HOME and calls, for each recording (all, or the NAMEs given),
the function in tests/recordings.py that the live fixtures call, then replaces tests/data/results/NAME
with what it wrote. Nothing is edited after the run: a test that needs a damaged or shifted copy makes
it from the recording at test time.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout, for `tests.recordings`

from tests.recordings import RECORDING_OPTIONS, RECORDINGS, RESULTS, environ_for_recording  # noqa: E402

NOT_KEPT = ("audio",)  # the run's saved audio (wav files, for its quality check): never committed


def main(names: list[str]) -> None:
    unknown = sorted(set(names) - set(RECORDINGS))
    if unknown:
        sys.exit(f"unknown recording(s) {', '.join(unknown)}: known are {', '.join(RECORDINGS)}")
    with tempfile.TemporaryDirectory(prefix="ttsload-test-data-") as scratch:
        work = Path(scratch)
        environ_for_recording(work / "home")
        from ttsload.bench.models import build

        model = build("vits-tiny").checkpoint.parent
        for name in names or RECORDINGS:
            print(f"recording {name} ...", flush=True)
            (work / f"{name}-scratch").mkdir()
            RECORDINGS[name](model, work / name, work / f"{name}-scratch", *RECORDING_OPTIONS)
            shutil.rmtree(RESULTS / name, ignore_errors=True)
            shutil.copytree(work / name, RESULTS / name, ignore=shutil.ignore_patterns(*NOT_KEPT))
            print(f"  -> {RESULTS / name}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
