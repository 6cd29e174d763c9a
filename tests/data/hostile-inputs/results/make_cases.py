"""Regenerate the crafted results folders beside this file from one real run (kept small: a few samples per cell).

    ttsload run --strategy naive,singleton --model vits-tiny --requests 1 --repeat 3 --out /tmp/real --no-history
    python tests/data/hostile-inputs/results/make_cases.py /tmp/real

Each folder holds one results.jsonl; tests/test_hostile_results.py says what each must do. Cases that must be
made at test time (symlinks) are generated there.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMING = ("cold_start_s", "weights_s", "cold_start_cpu_s", "weights_cpu_s", "import_s", "construct_s",
          "first_audio_s", "latency_p50_s")
SAMPLES_PER_CELL = 4


def trimmed(source: Path) -> list[dict]:
    """The real run's records with at most SAMPLES_PER_CELL memory samples per cell (the steady one kept)."""
    records, kept = [], {}
    for line in (source / "results.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["type"] == "sample" and not record.get("steady"):
            kept[record["cell"]] = kept.get(record["cell"], 0) + 1
            if kept[record["cell"]] > SAMPLES_PER_CELL:
                continue
        records.append(record)
    return records


def lines(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)  # json.dumps writes NaN and Infinity as JS tokens


def cells(records: list[dict], edit: Callable[[dict], None]) -> list[dict]:
    out = [dict(r) for r in records]
    for record in out:
        if record["type"] == "cell":
            edit(record)
    return out


def failed(row: dict) -> None:
    for key, value in list(row.items()):
        if isinstance(value, float):
            row[key] = None
    row.update(status="failed", reason="RuntimeError: the load failed")


def all_nan(row: dict) -> None:
    for key, value in list(row.items()):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("repeat", "schema"):
            row[key] = math.nan


def slower(row: dict) -> None:
    for key in TIMING:
        row[key] *= 3


def renamed(model: str, strategy: str | None = None, reason: str | None = None) -> Callable[[list[dict]], list[dict]]:
    """Every cell (and planned cell id, sample, event, request) of the run under another model name."""
    def apply(records: list[dict]) -> list[dict]:
        text = lines(records).replace('"vits-tiny', json.dumps(model)[:-1])
        if strategy:
            text = text.replace('"naive', json.dumps(strategy)[:-1])
        out = [json.loads(line) for line in text.splitlines()]
        if reason:
            for record in out:
                if record["type"] == "cell" and record["repeat"] == 0:
                    failed(record)
                    record["reason"] = reason
        return out
    return apply


def write(name: str, text: str | bytes) -> None:
    folder = HERE / name
    folder.mkdir(exist_ok=True)
    (folder / "results.jsonl").write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))


def main(source: Path) -> None:
    base = trimmed(source)
    write("baseline", lines(base))
    write("all-failed", lines(cells(base, failed)))
    write("all-nan", lines(cells(base, all_nan)))
    write("slower-3x", lines(cells(base, slower)))
    write("lacks-metric", lines(cells(base, lambda row: row.pop("pss_anon_trimmed_mb"))))
    text = lines(base).splitlines(keepends=True)
    middle = [i for i, line in enumerate(text) if '"type": "cell"' in line][2]  # a cell record, mid-file
    write("torn-middle", "".join(text[:middle] + [text[middle][: len(text[middle]) // 2] + "\n"] + text[middle + 1:]))
    write("model-path", lines(renamed("/srv/models/my voice/vits")(base)))
    # report/claims-x/ lets `claims-x/../../../NAME` resolve: the folder's parent, outside the results folder
    write("model-escape", lines(renamed("x/../../../escaped-by-model")(base)))
    (HERE / "model-escape" / "report" / "claims-x").mkdir(parents=True, exist_ok=True)
    (HERE / "model-escape" / "report" / "claims-x" / ".keep").write_text("")
    write("mathtext-name", lines(renamed("$\\frac{1}{$", strategy="$x^$")(base)))
    write("formula-names", lines(renamed("=HYPERLINK(\"http://x\")", strategy="@SUM(1)",
                                         reason="+cmd|' /C calc'!A0")(base)))
    write("markup-names", lines(renamed("[/]vits[bold]", reason="ValueError: [/] closing tag [bold]x")(base)))
    nan_inf = cells(base, lambda row: row.update(cold_start_s=math.nan, pss_mb=math.inf, weights_s=-math.inf))
    for record in nan_inf:
        if record["type"] == "sample":
            record["total"] = {**record["total"], "pss": math.nan, "rss": math.inf}
    write("nan-inf", lines(nan_inf))
    huge = lines(cells(base, lambda row: row.update(requests=2**70, loads=2**64))).replace(
        '"processes": 1', '"processes": ' + "9" * 5000)
    write("huge-int", huge)
    missing = [dict(r) for r in base]
    for record in missing:
        if record["type"] == "cell" and record["repeat"] == 1:
            record.pop("repeat")
        if record["type"] == "sample":
            record.pop("t_rel")
        if record["type"] == "run":
            record.pop("environment")
    write("missing-columns", lines(missing))
    write("non-object-lines", lines(base[:3]) + "[1, 2]\n42\n\"text\"\nnull\ntrue\n" + lines(base[3:]))
    bad = b'{"type": "event", "cell": "\xff\xfe"}\n'
    write("invalid-utf8", lines(base[:5]).encode() + bad + lines(base[5:]).encode())
    baseline_json(base)


def baseline_json(base: list[dict]) -> None:
    """The real run saved as a baseline whose noise study measured NaN thresholds (crafted or corrupted)."""
    sys.path.insert(0, str(HERE.parents[3]))
    from ttsload.bench.regression.resultset import ResultSet

    data = ResultSet.from_folder(HERE / "baseline").to_json()
    metrics = ("cold_start_s", "weights_s", "cold_start_cpu_s", "weights_cpu_s", "pss_anon_trimmed_mb")
    data["noise"] = {"runs": 5, "source": "crafted", "thresholds": {m: {"threshold_pct": math.nan} for m in metrics}}
    (HERE / "nan-threshold.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    data["noise"] = {}
    data["cells"][0]["metrics"]["cold_start_s"]["values"][0] = math.nan
    (HERE / "nan-value.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
