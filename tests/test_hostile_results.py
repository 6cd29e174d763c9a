"""Bad results folders and a gate that fails closed (issue #28): crafted folders in tests/data/hostile-inputs/results/
(made from one real run by make_cases.py there), symlinks made here. Every command ends in exit 0 or a one-line
error, never a traceback, and writes nothing outside its output folder."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import cli, ttsload
from ttsload.bench.exitcodes import ExitCode
from ttsload.bench.results import read_lines

CASES = Path(__file__).resolve().parent / "data" / "hostile-inputs" / "results"
WARNING = "malformed line(s)"


def box(case: str, tmp_path: Path) -> Path:
    """A private copy of a crafted folder, at tmp_path/box/CASE: tmp_path is what must not change outside it."""
    target = tmp_path / "box" / case
    shutil.copytree(CASES / case, target, symlinks=True)
    return target


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def written_outside(before: set[str], after: set[str], *inside: Path, root: Path) -> set[str]:
    allowed = [str(p.relative_to(root)) for p in inside]
    return {p for p in after - before if not any(p == a or p.startswith(a + "/") for a in allowed)}


def clean(done, code: int, error: bool = False) -> list[str]:
    """The exit code is `code`, no traceback; an `error` is one line of stderr. Returns stderr's lines."""
    lines = done.stderr.splitlines()
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    if error:
        assert len(lines) == 1 and lines[0].startswith("ttsload: error: "), done.stderr
    return lines


def gate(baseline: Path, current: Path, *args: str):
    return cli("gate", "--baseline", str(baseline), "--current", str(current), *args)


# --- the gate fails closed -------------------------------------------------------------------------------------

@pytest.mark.parametrize("baseline, current, args, reason", [
    ("baseline", "all-failed", (), "no successful repetition in the current run (3 failed)"),
    ("baseline", "all-failed", ("--fail", "cold_start_s:median:+10%"), "no successful repetition"),
    ("baseline", "all-nan", (), "the current run has no cold_start_s value for this cell"),
    ("baseline", "nan-inf", (), "the current run has no weights_s value for this cell"),
    ("baseline", "lacks-metric", (), "the current run has no pss_anon_trimmed_mb value"),
    ("nan-threshold.json", "slower-3x", (), "threshold nan is not a finite number"),
    ("nan-value.json", "baseline", (), "the baseline holds a non-finite cold_start_s value"),
])
def test_a_gate_with_nothing_finite_to_judge_fails_with_its_own_code(baseline, current, args, reason, tmp_path):
    verdict = tmp_path / "verdict.json"
    done = gate(CASES / baseline, CASES / current, *args, "--json", str(verdict))
    clean(done, 4)
    assert "FAIL: could not judge" in done.stdout and "pass: no regression" not in done.stdout
    assert f": {reason}" in done.stdout or reason in done.stdout, done.stdout
    data = json.loads(verdict.read_text())
    assert data["verdict"] == "could not judge" and data["exit_code"] == 4
    assert all(c["verdict"] == "COULD NOT JUDGE" for c in data["checks"] if c["note"])


def test_the_crafted_slow_run_regresses_against_a_finite_baseline_and_itself_passes():
    """The controls: the same folders with finite thresholds are judged (3x slower regresses, identical passes)."""
    clean(gate(CASES / "baseline", CASES / "slower-3x"), 1)
    assert "pass: no regression" in clean_stdout(gate(CASES / "baseline", CASES / "baseline"), 0)


def clean_stdout(done, code: int) -> str:
    clean(done, code)
    return done.stdout


@pytest.mark.parametrize("current", ["all-failed", "all-nan"])
def test_an_invariant_whose_cells_ran_but_gave_nothing_could_not_be_judged(current, tmp_path):
    (tmp_path / "none").mkdir()
    done = cli("gate", "--current", str(CASES / current), "--baselines", str(tmp_path / "none"),
                   "--invariants", str(CASES / "invariants-tiny.toml"))
    clean(done, 4)
    assert ("COULD NOT JUDGE naive-near-singleton: naive/vits-tiny/single and singleton/vits-tiny/single ran"
            in done.stdout)
    passed = cli("gate", "--current", str(CASES / "baseline"), "--baselines", str(tmp_path / "none"),
                     "--invariants", str(CASES / "invariants-tiny.toml"))
    assert "pass (1 of 1 checked)" in clean_stdout(passed, 0)


def test_non_finite_bounds_and_significance_levels_are_refused(tmp_path):
    (tmp_path / "none").mkdir()
    done = cli("gate", "--current", str(CASES / "baseline"), "--baselines", str(tmp_path / "none"),
                   "--invariants", str(CASES / "invariants-nan.toml"))
    assert "max_ratio must be a positive finite number, got nan" in clean(done, 2, error=True)[0]
    refused = gate(CASES / "baseline", CASES / "baseline", "--alpha", "nan")
    assert "--alpha must be a number between 0 and 1" in clean(refused, 2, error=True)[0]


# --- bad results folders: report, merge, gate ------------------------------------------------------------------

FOLDERS = ["torn-middle", "model-path", "model-escape", "mathtext-name", "formula-names", "markup-names", "nan-inf",
           "huge-int", "missing-columns", "non-object-lines", "invalid-utf8", "all-failed", "all-nan"]
MALFORMED = {"torn-middle": 1, "missing-columns": 32, "non-object-lines": 5, "invalid-utf8": 1}
GATE_CODE = {"torn-middle": ExitCode.UNDECIDED, "missing-columns": ExitCode.UNDECIDED, "huge-int": ExitCode.OK,
             "non-object-lines": ExitCode.OK, "invalid-utf8": ExitCode.OK, "nan-inf": ExitCode.UNJUDGED,
             "all-failed": ExitCode.UNJUDGED, "all-nan": ExitCode.UNJUDGED}  # the rest: baseline cells missing (USAGE)


@pytest.mark.parametrize("case", FOLDERS)
def test_report_merge_and_gate_of_a_bad_folder_end_cleanly_inside_their_folders(case, tmp_path):
    folder = box(case, tmp_path)
    before = snapshot(tmp_path)
    report = cli("report", str(folder))
    merged = cli("merge", str(folder), "--out", str(tmp_path / "merged"))
    judged = gate(CASES / "baseline", folder)
    gate_code = GATE_CODE.get(case, ExitCode.USAGE)
    warnings = [clean(report, 0), clean(merged, 0), clean(judged, gate_code, case not in GATE_CODE)]
    assert written_outside(before, snapshot(tmp_path), folder / "report", folder / "summary.csv",
                           tmp_path / "merged", root=tmp_path) == set()
    # malformed lines are counted, and said in the same one line, by every command
    said = [[line for line in lines if WARNING in line] for lines in warnings]
    expected = MALFORMED.get(case)
    assert said == ([[f"ttsload: warning: {read_lines(folder).warning()}"]] * 3 if expected else [[]] * 3)
    assert len(read_lines(folder).malformed) == (expected or 0)
    assert (folder / "report" / "report.html").is_file()
    assert read_lines(tmp_path / "merged").malformed == []  # merge never copies a line it could not read


def test_a_torn_line_in_the_middle_is_left_out_by_merge_as_by_the_store(tmp_path):
    folder = box("torn-middle", tmp_path)
    lines = read_lines(folder)
    assert lines.malformed == [67]
    clean(cli("merge", str(folder), "--out", str(tmp_path / "merged")), 0)
    merged = read_lines(tmp_path / "merged")
    assert len(merged.records) == len(lines.records) and merged.malformed == []


def test_model_names_never_name_a_file_outside_the_report(tmp_path):
    folder = box("model-escape", tmp_path)
    before = snapshot(tmp_path)
    clean(cli("report", str(folder)), 0)
    assert written_outside(before, snapshot(tmp_path), folder / "report", root=tmp_path) == set()
    (claims,) = [p.name for p in (folder / "report").glob("claims-*.csv")]
    assert "/" not in claims and claims.startswith("claims-x_.._.._.._escaped-by-model-single-")


def cells(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


def test_csv_cells_that_start_a_formula_are_escaped(tmp_path):
    folder = box("formula-names", tmp_path)
    clean(cli("report", str(folder)), 0)
    clean(cli("merge", str(folder), "--out", str(tmp_path / "merged")), 0)
    outputs = [*(folder / "report").glob("*.csv"), tmp_path / "merged" / "summary.csv"]
    found = [cell for path in outputs for cell in cells(path)]
    assert "'=HYPERLINK(\"http://x\")" in found and "'@SUM(1)" in found and "'+cmd|' /C calc'!A0" in found
    assert not [cell for cell in found if cell[:1] in ("=", "+", "@", "\t", "\r")]


def test_non_finite_and_huge_numbers_are_shown_as_missing(tmp_path):
    for case, crafted in (("nan-inf", {"cold_start_s", "pss_mb", "weights_s"}), ("huge-int", {"requests", "loads"})):
        folder = box(case, tmp_path)
        clean(cli("report", str(folder)), 0)
        with open(folder / "report" / "medians.csv", encoding="utf-8") as handle:
            shown = {(row["metric"], row["median"]) for row in csv.DictReader(handle)}
        assert ("latency_p50_s", "") not in shown and not [v for _, v in shown if v.lower() in ("nan", "inf", "-inf")]
        assert not crafted & {metric for metric, value in shown if value}, case
    assert [r for r in read_lines(tmp_path / "box" / "huge-int").records if r[1].get("type") == "cell"][0][1][
        "processes"] is None


# --- symlinks in results folders are not followed (made here: git keeps no links in test data) ------------------

def test_a_report_folder_that_is_a_symlink_is_refused(tmp_path):
    folder, elsewhere = box("baseline", tmp_path), tmp_path / "elsewhere"
    elsewhere.mkdir()
    (folder / "report").symlink_to(elsewhere)
    assert "report is a symbolic link: not followed" in clean(cli("report", str(folder)), 2, error=True)[0]
    assert list(elsewhere.iterdir()) == []


def test_a_report_file_that_is_a_symlink_is_not_written_through(tmp_path):
    folder, victim = box("baseline", tmp_path), tmp_path / "victim.txt"
    victim.write_text("keep me")
    (folder / "report").mkdir()
    (folder / "report" / "medians.csv").symlink_to(victim)
    refused = clean(cli("report", str(folder)), 2, error=True)[0]
    assert "medians.csv is a symbolic link: refusing to write through it" in refused
    assert victim.read_text() == "keep me"


def test_merge_copies_no_linked_logs(tmp_path):
    folder, secrets = box("baseline", tmp_path), tmp_path / "etc"
    secrets.mkdir()
    (secrets / "passwd").write_text("root:x:0:0")
    (folder / "logs").symlink_to(secrets)
    clean(cli("merge", str(folder), "--out", str(tmp_path / "merged")), 0)
    assert not (tmp_path / "merged" / "logs" / "passwd").exists()
    other = box("all-failed", tmp_path)
    (other / "logs").mkdir()
    (other / "logs" / "cell.log").symlink_to(secrets / "passwd")
    (other / "logs" / "real.log").write_text("a cell's output")
    clean(cli("merge", str(other), "--out", str(tmp_path / "merged2")), 0)
    assert sorted(p.name for p in (tmp_path / "merged2" / "logs").iterdir()) == ["real.log"]


@pytest.mark.parametrize("command", ["report", "merge", "gate"])
def test_a_results_file_that_is_a_symlink_is_not_read(command, tmp_path):
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / "results.jsonl").symlink_to(CASES / "baseline" / "results.jsonl")
    args = {"report": ("report", str(folder), "--out", str(tmp_path / "r")),
            "merge": ("merge", str(folder), "--out", str(tmp_path / "m")),
            "gate": ("gate", "--baseline", str(CASES / "baseline"), "--current", str(folder))}[command]
    assert "symbolic link" in clean(cli(*args), 2, error=True)[0]


# --- rich markup in names and failure reasons ----------------------------------------------------------------

def test_markup_in_a_failure_reason_or_a_name_is_printed_as_text():
    from ttsload.cli import console as ui

    row = {"status": "failed", "reason": "ValueError: [/] closing tag [bold]x", "scenario": "single",
           "strategy": "[/]s", "model": "[b]m"}
    with ui.console.capture() as captured:
        ui.console.print("[1/1] [/]cell: ", ui.cell_line(row), sep="")
        ui.print_tables([row], [])
    text = captured.get()
    assert "[1/1] [/]cell: FAILED ValueError: [/] closing tag [bold]x" in text and "│ [/]s " in text and "[b]m" in text


@pytest.mark.integration
def test_a_run_and_report_of_a_model_path_with_markup_and_slashes(tiny, tmp_path):
    """`--model PATH` whose path holds `[/]`: the run's console lines and the report's file names survive it."""
    model = tmp_path / "m[" / "]v"
    shutil.copytree(tiny.checkpoint.parent, model)
    out = tmp_path / "out"
    done = ttsload("run", "--strategy", "naive", "--model", str(model), "--requests", "1", "--repeat", "1",
                   "--out", str(out), "--no-history")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"naive|{model}|single|0: ok" in done.stderr
    before = snapshot(tmp_path)
    clean(cli("report", str(out)), 0)
    assert written_outside(before, snapshot(tmp_path), out / "report", root=tmp_path) == set()
    (claims,) = (out / "report").glob("claims-*.csv")
    assert claims.parent == out / "report"
