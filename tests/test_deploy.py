"""deploy/: the GitHub Actions workflow and the Kubernetes manifests parse, and every ttsload command they run
is accepted by the CLI's own parser (so a renamed flag breaks here, not in someone's cluster)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from ttsload.bench import sharding
from ttsload.cli.main import parser

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
WORKFLOW = DEPLOY / "github" / "ttsload-fanout.yml"
SHARDS, MERGE = DEPLOY / "kubernetes" / "ttsload-shards.yaml", DEPLOY / "kubernetes" / "ttsload-merge.yaml"


def commands(shell: str) -> list[list[str]]:
    """Every `ttsload ...` command of a shell script, with placeholders (${{ x }}, $(X)) made concrete."""
    values = {"matrix.shard": "0", "env.SHARDS": "3"}  # the rest (names, counts) as "1"
    text = re.sub(r"\$\{\{\s*([^}\s]*)\s*\}\}", lambda m: values.get(m.group(1), "1"), shell.replace("\\\n", " "))
    shell_values = {"JOB_COMPLETION_INDEX": "0", "WHERE": "--out folder"}  # the rest (names, paths) as "name"
    text = re.sub(r"\$\(?\{?(\w+)\}?\)?", lambda m: shell_values.get(m.group(1), "name"), text)
    found = []
    for line in text.splitlines():
        for part in re.split(r"&&|\|\||;", line):
            words = shlex.split(part)
            if words and words[0] == "ttsload":
                found.append(words[1:])
    return found


def check(argv: list[str]) -> None:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"ttsload {' '.join(argv)}: rejected by the CLI's parser (exit {exc.code})")
    if getattr(args, "shard", None):
        sharding.parse(args.shard)


def test_workflow_fans_out_over_shards_and_runners_then_merges():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    measure, merge = workflow["jobs"]["measure"], workflow["jobs"]["merge"]
    matrix = measure["strategy"]["matrix"]
    assert matrix["shard"] == list(range(int(workflow["env"]["SHARDS"]))) and len(matrix["runner"]) >= 1
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in measure["steps"])
    assert merge["needs"] == "measure" and any(s.get("uses", "").startswith("actions/download-artifact")
                                               for s in merge["steps"])
    runs = {job: [c for s in workflow["jobs"][job]["steps"] for c in commands(s.get("run", ""))]
            for job in ("measure", "merge")}
    assert [c[0] for c in runs["measure"]] == ["doctor", "run"] and "--shard" in runs["measure"][1]
    assert [c[0] for c in runs["merge"]] == ["merge", "report"]
    for argv in runs["measure"] + runs["merge"]:
        check(argv)


def test_indexed_job_measures_one_shard_per_pod_one_pod_per_node():
    documents = list(yaml.safe_load_all(SHARDS.read_text()))
    job = next(d for d in documents if d["kind"] == "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"]
    pod = spec["template"]["spec"]
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
    container = pod["containers"][0]
    assert container["command"] == ["sh", "-c"] and f'"$JOB_COMPLETION_INDEX/{spec["completions"]}"' in \
        container["args"][0]
    (command,) = commands(container["args"][0])
    assert command[0] == "run" and "--shard" in command and "--machine" in command
    check(command)
    check([*command[:command.index("--out")], "--resume", "folder"])  # the retried pod's command
    assert "One measured pod per node" in SHARDS.read_text() and "compete for cores" in SHARDS.read_text()


def test_merge_job_runs_merge_then_report():
    (job,) = yaml.safe_load_all(MERGE.read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    found = commands(" ".join(container["args"]))
    assert [c[0] for c in found] == ["merge", "report"]
    for argv in found:
        check(argv)


def test_ab_workflow_checks_out_base_and_head_and_gates_them_side_by_side():
    workflow = yaml.safe_load((DEPLOY / "github" / "ttsload-ab-gate.yml").read_text())
    steps = workflow["jobs"]["ab-gate"]["steps"]
    checkouts = [s["with"] for s in steps if s.get("uses", "").startswith("actions/checkout")]
    assert [c["path"] for c in checkouts] == ["base", "head"]
    assert "base.sha" in checkouts[0]["ref"] and "head.sha" in checkouts[1]["ref"]
    runs = [c for s in steps for c in commands(re.sub(r"\S+/\.venv/bin/ttsload", "ttsload", s.get("run", "")))]
    gate = next(c for c in runs if c[0] == "gate")
    assert gate[gate.index("--ab") + 1:gate.index("--ab") + 3] == ["base/.venv/bin/python", "head/.venv/bin/python"]
    for argv in runs:
        check(argv)
