"""Reading the stage policies the way IAM does, with the template's pseudo parameters filled in."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("dev", "prod")
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}


def chalice_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return config


def stage_env(stage: str) -> dict[str, str]:
    config = chalice_config()
    return {**config.get("environment_variables", {}), **config["stages"][stage]["environment_variables"]}


def function_policy(stage: str, function: str) -> dict[str, Any]:
    """The policy of one function's role: its own file, else the stage's (as chalice resolves it)."""
    settings = chalice_config()["stages"][stage]
    own = settings.get("lambda_functions", {}).get(function, {}).get("iam_policy_file")
    policy: dict[str, Any] = json.loads(
        (ROOT / ".chalice" / (own or settings["iam_policy_file"])).read_text()
    )
    return policy


def stage_functions(stage: str) -> list[str]:
    return list(chalice_config()["stages"][stage].get("lambda_functions", {}))


def load_policy(stage: str) -> dict[str, Any]:
    """Everything any function of the stage may do: the union of their policies' statements."""
    merged: list[Any] = []
    for function in stage_functions(stage):
        merged += as_list(function_policy(stage, function)["Statement"])
    return {"Version": "2012-10-17", "Statement": merged}


def resolve(value: Any) -> str:
    """A resource as IAM sees it: plain strings as they are, ``Fn::Sub`` with the pseudo parameters."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        for name, replacement in PSEUDO.items():
            text = text.replace("${" + name + "}", replacement)
        assert "${" not in text, f"unresolved variable in {value}"
        return text
    raise AssertionError(f"a policy resource must be a string or an Fn::Sub of pseudo parameters: {value}")


def arn(service: str, rest: str) -> str:
    return f"arn:aws:{service}:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}:{rest}"


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Statement:
    sid: str
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]


def statements(policy: dict[str, Any]) -> list[Statement]:
    return [
        Statement(
            sid=s.get("Sid", ""),
            effect=s["Effect"],
            actions=tuple(as_list(s["Action"])),
            resources=tuple(resolve(r) for r in as_list(s["Resource"])),
        )
        for s in as_list(policy["Statement"])
    ]


def _matches(patterns: tuple[str, ...], value: str) -> bool:
    # IAM's wildcards are * and ?, which fnmatch shares; ARNs here contain no [ ].
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    """IAM's verdict for one action on one resource: an explicit Deny wins over any Allow."""
    found = [s for s in statements(policy) if _matches(s.actions, action) and _matches(s.resources, resource)]
    return any(s.effect == "Allow" for s in found) and not any(s.effect == "Deny" for s in found)


def allowed_actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in statements(policy) if s.effect == "Allow" for a in s.actions}
