"""The stack as `make deploy` sends it, linted offline: cfn-lint, checkov, a real ASL validator
(asl-validator from npm) and moto's ASL parser on every state machine, and the rules this project holds
its state machines to. With CI=true a missing tool fails these tests instead of skipping them."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nlp_emr import template
from tests.aws.conftest import require_tool as tool

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".cache" / "checkov" / "bin" / "checkov"
ASL_VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
STACK = template.synthesize()
MACHINES = {name: json.loads(r["Properties"]["DefinitionString"])
            for name, r in STACK["Resources"].items() if r["Type"] == "AWS::StepFunctions::StateMachine"}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("templates")
    out = {"stack": template.write(folder / "stack.json"), "bootstrap": folder / "bootstrap.json"}
    out["bootstrap"].write_text(json.dumps(template.bootstrap(), indent=1))
    return out


@pytest.mark.parametrize("which", ["stack", "bootstrap"])
def test_cfn_lint_finds_nothing(written, which):
    lint = tool(Path(sys.executable).parent / "cfn-lint", "make setup (cfn-lint comes with moto[server])")
    done = subprocess.run([lint, "--format", "parseable", str(written[which])], capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "")


def test_checkov_findings_are_fixed_or_suppressed_with_a_reason(written):
    checkov = tool(CHECKOV, "make setup (a virtualenv of its own under .cache/checkov)")
    done = subprocess.run([checkov, "-f", str(written["stack"]), "--framework", "cloudformation", "--output", "json",
                           "--skip-download"], capture_output=True, text=True)
    report = json.loads(done.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    skipped = {(c["check_id"], c["resource"].split(".", 1)[1]) for c in report["results"]["skipped_checks"]}
    declared = {(s["id"], name) for name, r in STACK["Resources"].items()
                for s in r.get("Metadata", {}).get("checkov", {}).get("skip", [])}
    assert skipped == declared                     # every suppression is in use, none is silent
    assert all(s.get("comment") for r in STACK["Resources"].values()
               for s in r.get("Metadata", {}).get("checkov", {}).get("skip", []))
    assert report["summary"]["passed"] > 100


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_state_machines_pass_the_asl_validator_and_motos_parser(name):
    validator = tool(ASL_VALIDATOR, "make setup (npm ci: package-lock.json pins asl-validator)")
    definition = json.dumps(MACHINES[name])
    done = subprocess.run([validator, "--json-definition", definition], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    AmazonStateLanguageParser.parse(definition)    # the interpreter the tests execute them with


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_every_placeholder_has_a_substitution_and_every_substitution_a_use(name):
    props = STACK["Resources"][name]["Properties"]
    used = set(re.findall(r"\$\{(\w+)\}", props["DefinitionString"]))
    assert used == set(props["DefinitionSubstitutions"])


def test_the_bootstrap_stack_is_small_enough_to_send_and_the_whole_one_is_staged():
    assert len(template.body(template.bootstrap())) < template.TEMPLATE_BODY_LIMIT
    assert set(template.bootstrap()["Resources"]) == set(template.BOOTSTRAP)
    with pytest.raises(ValueError, match="TemplateBody limit"):
        template.body(STACK)                       # why deploy stages it in the bucket


def test_stage_tasks_time_out_and_are_never_retried_by_the_pipeline():
    states = MACHINES["PipelineStateMachine"]["States"]
    stages = {n: s for n, s in states.items() if s.get("Resource") == "arn:aws:states:::states:startExecution.sync:2"}
    assert set(stages) == {"Ingest", "Train", "Infer", "Dbt", "Report", "Retrain", "Maintain"}
    for name, state in stages.items():
        assert state["TimeoutSecondsPath"] == "$.config.stage_timeout_seconds", name
        assert "Retry" not in state, name           # the stage machine makes the 3 attempts, nobody else
        assert [c["Next"] for c in state["Catch"]] == ["NotifyFailure"], name
    stage = MACHINES["StageStateMachine"]["States"]
    assert "Retry" not in stage["AddStep"]
    assert states["Configure"]["Parameters"]["config"]["max_attempts"] == 3


def test_every_pipeline_failure_path_notifies_and_terminates_the_cluster():
    states = MACHINES["PipelineStateMachine"]["States"]
    cleanup = {"NotifyFailure", "TerminateClusterAfterFailure", "RecordFailure"}
    for name, state in states.items():
        if state["Type"] == "Task" and name not in cleanup:
            nexts = [c["Next"] for c in state["Catch"]]
            assert nexts[-1] == "NotifyFailure", name
    assert states["NotifyFailure"]["Next"] == states["NotifyFailure"]["Catch"][0]["Next"] == "ClusterToTerminate?"
    assert states["ClusterToTerminate?"]["Choices"][0] == {
        "Variable": "$.cluster.ClusterId", "IsPresent": True, "Next": "TerminateClusterAfterFailure"}
    terminators = {n for n, s in states.items() if s.get("Resource", "").endswith("emr:terminateJobFlows")}
    assert terminators == {"TerminateCluster", "TerminateClusterAfterFailure"}
    rules = {r["Properties"]["Name"]["Fn::Sub"]: r for r in STACK["Resources"].values() if r["Type"] == "AWS::Events::Rule"}
    stopped = rules["${ProjectName}-pipeline-stopped"]["Properties"]
    assert stopped["EventPattern"]["detail"]["status"] == ["FAILED", "TIMED_OUT", "ABORTED"]
    assert stopped["Targets"][0]["Arn"] == {"Ref": "CleanupStateMachine"}


def test_the_state_keeps_no_record_content():
    """Review texts never reach the execution history: the pipeline reads outcome markers by name and
    the cluster shape; it never reads a run record's content."""
    for name, definition in MACHINES.items():
        for state_name, state in definition["States"].items():
            if state.get("Resource", "").endswith("s3:getObject"):
                assert (name, state_name) == ("PipelineStateMachine", "LoadClusterRequest")
                assert "emr/cluster.json" in state["Parameters"]["Key.$"]
    logging = [r["Properties"]["LoggingConfiguration"] for r in STACK["Resources"].values()
               if r["Type"] == "AWS::StepFunctions::StateMachine"]
    assert all(c["IncludeExecutionData"] is False for c in logging)


def test_make_synth_writes_the_template_deploy_sends(tmp_path):
    out = tmp_path / "stack.json"
    done = subprocess.run([sys.executable, "-m", "nlp_emr", "synth", f"--out={out}"], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "emr")), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == STACK
