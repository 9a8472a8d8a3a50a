"""Each function's role allows every AWS action it performs, and nothing it does not.

The actions are recorded (``devstack/aws_actions.py``) while the real handlers run; the policy is
the role the stack created for that function, read back from IAM. Both directions are checked,
resource ARNs included:

- every recorded (action, resource) is allowed by the function's policy (an explicit Deny wins);
- every (action, resource pattern) the policy allows was performed on a resource it matches,
  except the few only production performs (``PRODUCTION_ONLY``, each with its reason).
"""

from __future__ import annotations

import ast
import fnmatch
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

# What a function's role is used for in production that no local run performs.
PRODUCTION_ONLY = {
    "logs:CreateLogStream": "Lambda's runtime writes each function's logs with its role (locally: stderr)",
    "logs:PutLogEvents": "... into the log group the stack created for it",
}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def matches(patterns: Iterable[str], value: str) -> bool:
    # IAM's wildcards are * and ?, which fnmatch shares; the ARNs here hold no [ ].
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def statements(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, str):
        text = unquote(document)
        try:
            document = json.loads(text)
        except json.JSONDecodeError:  # moto keeps a CloudFormation-made policy as Python's repr
            document = ast.literal_eval(text)
    return [
        {
            "Effect": s["Effect"],
            "Action": as_list(s["Action"]),
            "Resource": [str(r) for r in as_list(s["Resource"])],
        }
        for s in as_list(document["Statement"])
    ]


def allows(policy: list[dict[str, Any]], action: str, resource: str) -> bool:
    found = [s for s in policy if matches(s["Action"], action) and matches(s["Resource"], resource)]
    return any(s["Effect"] == "Allow" for s in found) and not any(s["Effect"] == "Deny" for s in found)


def role_policy(aws: Any, role_arn: str) -> list[dict[str, Any]]:
    name = role_arn.rsplit("/", 1)[-1]
    out: list[dict[str, Any]] = []
    for policy_name in aws.iam.list_role_policies(RoleName=name)["PolicyNames"]:
        out += statements(aws.iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"])
    attached = aws.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    for policy in attached:
        version = aws.iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]["DefaultVersionId"]
        doc = aws.iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=version)["PolicyVersion"][
            "Document"
        ]
        out += statements(doc)
    return out


def verdicts(
    policy: list[dict[str, Any]], performed: set[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(performed but not allowed, allowed but never performed) for one function."""
    denied = sorted((a, r) for a, r in performed if not allows(policy, a, r))
    unused = []
    for statement in policy:
        if statement["Effect"] != "Allow":
            continue
        for action in statement["Action"]:
            if action in PRODUCTION_ONLY:
                continue
            for pattern in statement["Resource"]:
                if not any(matches([action], a) and fnmatch.fnmatchcase(r, pattern) for a, r in performed):
                    unused.append((action, pattern))
    return denied, sorted(unused)


def check_least_privilege(
    aws: Any, functions: dict[str, dict[str, Any]], recorded: set[tuple[str, str, str]], report: Any
) -> None:
    names = {config["FunctionName"]: rid for rid, config in functions.items()}
    strangers = sorted({f for f, _, _ in recorded if f not in names})
    report.check(
        not strangers,
        "every recorded AWS call was made by one of the stack's functions",
        f"calls by unknown functions: {strangers}",
    )
    for fn_name, rid in sorted(names.items()):
        performed = {(a, r) for f, a, r in recorded if f == fn_name}
        policy = role_policy(aws, functions[rid]["Role"])
        denied, unused = verdicts(policy, performed)
        report.check(
            not denied,
            f"{rid}: its role allows all {len(performed)} (action, resource) pairs it performed",
            f"{rid}: performed what its role does not allow: {denied}",
        )
        report.check(
            not unused,
            f"{rid}: its role allows nothing it did not do (besides {', '.join(sorted(PRODUCTION_ONLY))})",
            f"{rid}: its role allows what it never performed: {unused}",
        )


# ---- the suite's recording, against the stage's policy files ---------------------------------------


def stage_policies(stage: str, root: Any = None) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """(function -> its policy from .chalice, Fn::Sub resolved; the stage's environment)."""
    from pathlib import Path

    root = Path(root or Path(__file__).resolve().parent.parent)
    config = json.loads((root / ".chalice" / "config.json").read_text())
    settings = config["stages"][stage]
    env = {**config.get("environment_variables", {}), **settings.get("environment_variables", {})}
    pseudo = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}

    def resolve(value: Any) -> str:
        text = value["Fn::Sub"] if isinstance(value, dict) else value
        for name, replacement in pseudo.items():
            text = text.replace("${" + name + "}", replacement)
        return str(text)

    policies = {}
    for function, fn_settings in settings.get("lambda_functions", {}).items():
        name = fn_settings.get("iam_policy_file") or settings["iam_policy_file"]
        document = json.loads((root / ".chalice" / name).read_text())
        for statement in as_list(document["Statement"]):
            statement["Resource"] = [resolve(r) for r in as_list(statement["Resource"])]
        policies[function] = statements(document)
    return policies, env


def check_recorded_against_stage(
    recorded: set[tuple[str, str, str]], stage: str, local: Any = None
) -> list[str]:
    """What a local run's functions did that their ``stage`` policy would refuse. Resource names of
    the local run (``local``: its environment, default this process's) are renamed to the stage's."""
    import os

    policies, env = stage_policies(stage)
    local = local or os.environ
    renames = sorted(
        (
            (local[k], env[k])
            for k in (
                "TABLE_NAME",
                "INTAKE_QUEUE_NAME",
                "SEND_QUEUE_NAME",
                "WEBHOOK_QUEUE_NAME",
                "SECRETS_PREFIX",
            )
            if k in local and k in env
        ),
        key=lambda pair: -len(pair[0]),
    )
    problems = []
    for function, action, resource in sorted(recorded):
        for old, new in renames:
            resource = resource.replace(f":{old}", f":{new}").replace(f"/{old}", f"/{new}")
        if function not in policies:
            problems.append(f"{function}: no such function in stage {stage}")
        elif not allows(policies[function], action, resource):
            problems.append(f"{function} {action} {resource}")
    return problems
