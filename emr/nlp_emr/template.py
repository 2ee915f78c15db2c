"""The CloudFormation stack: emr/stack.yaml with its state machines inlined (what `make synth` writes).

stack.yaml names each state machine's ASL file in `DefinitionS3Location` (a local path, the convention of
`aws cloudformation package`); `synthesize()` replaces it with the file's compact JSON as
`DefinitionString`, so the template deploys with `--template-body` and no bucket to stage it in. The
`${...}` placeholders in the ASL are the state machine's `DefinitionSubstitutions`, filled by
CloudFormation.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

EMR_DIR = Path(__file__).resolve().parent.parent
TEMPLATE = EMR_DIR / "stack.yaml"
TEMPLATE_BODY_LIMIT = 51_200   # bytes CloudFormation accepts as TemplateBody (larger ones need an S3 URL)
# A stack created from scratch starts with these resources (a template small enough to send as
# TemplateBody); the whole template, too large for that, is then staged in the bucket and applied as
# an update of the same stack.
BOOTSTRAP = ("Key", "KeyAlias", "AccessLogBucket", "AccessLogBucketPolicy", "Bucket")


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms: !Ref X -> {"Ref": X}, !GetAtt A.B -> {"Fn::GetAtt": [A, B]}."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load(path: Path = TEMPLATE) -> dict:
    return yaml.load(path.read_text(), Loader=_CfnLoader)


def state_machine_files(template: dict) -> dict[str, Path]:
    """Logical id -> ASL file of every state machine that names one."""
    return {name: EMR_DIR / r["Properties"]["DefinitionS3Location"]
            for name, r in template["Resources"].items()
            if r["Type"] == "AWS::StepFunctions::StateMachine"
            and isinstance(r["Properties"].get("DefinitionS3Location"), str)}


def synthesize(path: Path = TEMPLATE) -> dict:
    """The template as it is deployed: every local ASL file inlined, compact."""
    template = load(path)
    for name, asl in state_machine_files(template).items():
        props = template["Resources"][name]["Properties"]
        del props["DefinitionS3Location"]
        props["DefinitionString"] = json.dumps(json.loads(asl.read_text()), separators=(",", ":"))
    return template


def bootstrap(path: Path = TEMPLATE) -> dict:
    """The first version of a new stack: the key and the bucket only. The key's users are the operators
    until the roles exist (the full template names them)."""
    template = load(path)
    template["Resources"] = {k: v for k, v in template["Resources"].items() if k in BOOTSTRAP}
    for statement in template["Resources"]["Key"]["Properties"]["KeyPolicy"]["Statement"]:
        if statement["Sid"] == "KeyUsers":
            statement["Principal"] = {"AWS": {"Ref": "OperatorArns"}}
    template["Resources"]["Key"]["Properties"]["KeyPolicy"]["Statement"] = [
        s for s in template["Resources"]["Key"]["Properties"]["KeyPolicy"]["Statement"]
        if "Fn::GetAtt" not in json.dumps(s)]
    template["Outputs"] = {k: v for k, v in template["Outputs"].items() if k in ("BucketName", "KeyArn")}
    template["Conditions"] = {k: v for k, v in template["Conditions"].items() if k == "CreateBucket"}
    text = json.dumps([template["Resources"], template["Conditions"]])
    template["Parameters"] = {k: v for k, v in template["Parameters"].items()
                              if f'"Ref": "{k}"' in text or "${" + k + "}" in text}
    template.pop("Metadata", None)
    return template


def body(template: dict) -> str:
    text = json.dumps(template, separators=(",", ":"))
    if len(text.encode()) > TEMPLATE_BODY_LIMIT:
        raise ValueError(f"the synthesised stack is {len(text.encode()):,} bytes, over CloudFormation's "
                         f"{TEMPLATE_BODY_LIMIT:,}-byte TemplateBody limit: shorten the ASL files or stage it in S3")
    return text


def write(out: Path) -> Path:
    """`make synth`: emr/build/stack.json, the template `make deploy` sends."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(synthesize(), indent=1) + "\n")
    return out
