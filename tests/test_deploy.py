"""deploy/: the GitHub Actions workflow and the Kubernetes manifests parse, and every ttsload command they run
is accepted by the CLI's own parser (so a renamed flag breaks here, not in someone's cluster); the Job's exit
codes and failure policy follow the CLI's; fanout.sh, against a fake kubectl, waits for Complete or Failed and
always merges. Schema checks (kubernetes-validate, actionlint, the workflow schema, hadolint) run in `nox -s lint`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from ttsload.bench import sharding
from ttsload.bench.errors import EXIT_CRASH, EXIT_FAILED, EXIT_USAGE
from ttsload.cli.main import parser

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
WORKFLOW = DEPLOY / "github" / "ttsload-fanout.yml"
KUBE = DEPLOY / "kubernetes"
SHARDS, MERGE, CLAIM = KUBE / "ttsload-shards.yaml", KUBE / "ttsload-merge.yaml", KUBE / "ttsload-results-pvc.yaml"
PARAMETERS = {"TTSLOAD_IMAGE": "registry.example/ttsload:abc123", "TTSLOAD_STORAGE_CLASS": "nfs-client",
              "TTSLOAD_RUN": "r20261203", "TTSLOAD_POOL": "epyc"}


def render(path: Path) -> list[dict]:
    """A manifest with its documented parameters substituted, as `envsubst '$TTSLOAD_...'` does."""
    text = path.read_text()
    used = set(re.findall(r"\$\{(\w+)\}", text))
    assert used <= set(PARAMETERS), f"{path.name}: undocumented parameters {used - set(PARAMETERS)}"
    for name in used:
        assert f"${name}" in text.split("apiVersion:")[0], f"{path.name}: parameter {name} not in its header"
        text = text.replace("${" + name + "}", PARAMETERS[name])
    return list(yaml.safe_load_all(text))


def commands(shell: str) -> list[list[str]]:
    """Every `ttsload ...` command of a shell script, with placeholders (${{ x }}, $(X)) made concrete."""
    values = {"matrix.shard": "0", "env.SHARDS": "3"}  # the rest (names, counts) as "1"
    text = re.sub(r"\$\{\{\s*([^}\s]*)\s*\}\}", lambda m: values.get(m.group(1), "1"), shell.replace("\\\n", " "))
    shell_values = {"JOB_COMPLETION_INDEX": "0", "WHERE": "--out folder", "REPEAT": "2"}  # the rest as "name"
    text = re.sub(r"\$\(?\{?(\w+)\}?\)?", lambda m: shell_values.get(m.group(1), "name"), text)
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for part in re.split(r"&&|\|\||;|\|", line):
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
    assert merge["needs"] == "measure" and merge["if"] == "always()"
    assert any(s.get("uses", "").startswith("actions/download-artifact") for s in merge["steps"])
    runs = {job: [c for s in workflow["jobs"][job]["steps"] for c in commands(s.get("run", ""))]
            for job in ("measure", "merge")}
    assert [c[0] for c in runs["measure"]] == ["run"] and "--shard" in runs["measure"][0]
    assert [c[0] for c in runs["merge"]] == ["merge", "report"]
    for job in (measure, merge):  # the image's recipe, not a second copy of it
        assert [s["run"] for s in job["steps"] if "install" in s.get("name", "")] == ["sh deploy/install.sh ."]
    for argv in runs["measure"] + runs["merge"] + commands((DEPLOY / "install.sh").read_text()):
        check(argv)
    assert "not a machine class" in WORKFLOW.read_text() and "fingerprint" in WORKFLOW.read_text()


def test_indexed_job_measures_one_shard_per_pod_one_pod_per_node():
    (job,) = render(SHARDS)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"]
    pod = spec["template"]["spec"]
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
    assert pod["nodeSelector"] == {"ttsload/pool": "epyc"} and pod["tolerations"][0]["key"] == "ttsload/measure"
    container = pod["containers"][0]
    assert container["image"] == PARAMETERS["TTSLOAD_IMAGE"]
    assert container["command"] == ["sh", "-c"] and f'"$JOB_COMPLETION_INDEX/{spec["completions"]}"' in \
        container["args"][0]
    (command,) = commands(container["args"][0])
    assert command[0] == "run" and "--shard" in command and "--machine" in command
    check(command)
    check([*command[:command.index("--out")], "--resume", "folder"])  # the retried pod's command
    assert "One measured pod per node" in SHARDS.read_text() and "compete for cores" in SHARDS.read_text()
    assert "static CPU manager" in SHARDS.read_text()


def test_two_jobs_never_share_a_folder_and_the_claim_names_its_storage_class():
    (job,) = render(SHARDS)
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert 'OUT="/results/$RUN/$POOL/shard-$JOB_COMPLETION_INDEX"' in script
    assert job["metadata"]["name"] == "ttsload-r20261203-epyc" and (env["RUN"], env["POOL"]) == ("r20261203", "epyc")
    (claim,) = render(CLAIM)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"] and claim["spec"]["storageClassName"] == "nfs-client"
    (merge,) = render(MERGE)
    assert "/results/$RUN/*/shard-*" in merge["spec"]["template"]["spec"]["containers"][0]["args"][0]


def run_script(script: str, code: int) -> int:
    return subprocess.run(["sh", "-c", script], env={**os.environ, "FAKE": str(code)}).returncode


def test_exit_codes_failed_cells_end_the_shard_a_crash_fails_its_index_a_disruption_is_ignored():
    (job,) = render(SHARDS)
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "|| [ $? -eq 1 ]" not in script
    # the pod's script with `ttsload run` replaced by a command that exits with a given code
    fake = re.sub(r"^ttsload run .*$", "sh -c 'exit $FAKE'", script, flags=re.M).replace("$WHERE", "")
    fake = fake.replace('OUT="/results/', 'OUT="/nonexistent/')
    assert [run_script(fake, code) for code in (0, EXIT_FAILED, EXIT_USAGE, 3, EXIT_CRASH, 137)] == \
        [0, 0, EXIT_USAGE, 3, EXIT_CRASH, 137]
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert rules[1]["action"] == "FailIndex" and rules[1]["onExitCodes"] == {
        "containerName": "ttsload", "operator": "In", "values": [EXIT_USAGE, EXIT_CRASH]}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never" and job["spec"]["backoffLimitPerIndex"] >= 1


def test_merge_job_runs_merge_then_report():
    (job,) = render(MERGE)
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


@pytest.mark.parametrize("shards_end", ["Failed", "Complete"])
def test_fanout_waits_for_complete_or_failed_and_always_merges(shards_end, tmp_path):
    """fanout.sh against a fake kubectl: a failed shard Job ends the wait at once (no day-long wait for
    Complete), the merge Job is applied either way, and the script's exit says whether anything failed."""
    (tmp_path / "bin").mkdir()
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.write_text(f"""#!/bin/sh
echo "$*" >> {tmp_path}/calls
case "$1 $2" in
  "get job/ttsload-r1-a") echo "{shards_end} ";;
  "get job/ttsload-r1-merge") echo "Complete ";;
  "logs job/ttsload-r1-merge") echo "machine class 0123456789ab (node-1): complete";;
  "apply -f") cat >> {tmp_path}/applied;;
esac
""")
    kubectl.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "TTSLOAD_TIMEOUT": "5",
           **PARAMETERS, "TTSLOAD_RUN": "r1"}
    done = subprocess.run(["sh", str(KUBE / "fanout.sh"), "a"], env=env, capture_output=True, text=True, timeout=60)
    applied = (tmp_path / "applied").read_text()
    assert done.returncode == (1 if shards_end == "Failed" else 0), done.stderr
    assert f"shards of pool a: {shards_end}" in done.stdout
    assert "name: ttsload-r1-a" in applied and "name: ttsload-r1-merge" in applied and "${" not in applied
    assert "storageClassName: nfs-client" in applied
