"""`make rehearse`: the packaged template, created as a stack in the emulator, carries a push from the
API function to the APNs sandbox; AWS's constraints hold; each function's role allows exactly what it
does. And the least-privilege verdicts themselves, on small policies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.least_privilege import verdicts
from tests.infra.iam import ROOT

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/t"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:q"


def policy(*statements: tuple[str, list[str], list[str]]) -> list[dict[str, object]]:
    return [
        {"Effect": effect, "Action": actions, "Resource": resources}
        for effect, actions, resources in statements
    ]


@pytest.mark.slow
def test_the_dev_stack_rehearses_a_push_and_holds_every_check(built: dict[str, Path]) -> None:
    # Given the dev stage packaged (sam.json + deployment.zip)
    build = built["dev"].parent
    # When the rehearsal creates it in the emulator and runs the handlers against it
    done = subprocess.run(
        [sys.executable, "-m", "devstack.rehearse", "--stage", "dev", "--build", str(build)],
        cwd=ROOT,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Then every check holds and the report says what it proved and what it could not check
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-4000:]
    assert "reached the APNs sandbox once" in out
    assert "the API function reports the device `sent`" in out
    assert "visibility timeout" in out and "ReportBatchItemFailures" in out and "kept 14 days" in out
    assert "its role allows nothing it did not do" in out
    assert "not checked here (only a real account can)" in out and "Swagger 2.0" in out
    assert ", 0 problems" in out


def test_an_action_the_role_does_not_allow_is_reported() -> None:
    role = policy(("Allow", ["dynamodb:GetItem"], [TABLE]))
    denied, _ = verdicts(role, {("dynamodb:GetItem", TABLE), ("dynamodb:PutItem", TABLE)})
    assert denied == [("dynamodb:PutItem", TABLE)]


def test_an_action_on_another_resource_is_not_allowed() -> None:
    role = policy(("Allow", ["dynamodb:GetItem"], [TABLE]))
    denied, _ = verdicts(role, {("dynamodb:GetItem", TABLE + "-other")})
    assert denied == [("dynamodb:GetItem", TABLE + "-other")]


def test_an_explicit_deny_wins() -> None:
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:p/operator-key-AbCdEf"
    role = policy(
        (
            "Allow",
            ["secretsmanager:PutSecretValue"],
            ["arn:aws:secretsmanager:us-east-1:123456789012:secret:p/*"],
        ),
        ("Deny", ["secretsmanager:PutSecretValue"], [secret.replace("AbCdEf", "??????")]),
    )
    denied, _ = verdicts(role, {("secretsmanager:PutSecretValue", secret)})
    assert denied == [("secretsmanager:PutSecretValue", secret)]


def test_a_permission_nothing_performed_is_reported() -> None:
    role = policy(
        ("Allow", ["dynamodb:GetItem", "dynamodb:DeleteItem"], [TABLE]),
        ("Allow", ["sqs:SendMessage"], [QUEUE]),
    )
    _, unused = verdicts(role, {("dynamodb:GetItem", TABLE)})
    assert unused == [("dynamodb:DeleteItem", TABLE), ("sqs:SendMessage", QUEUE)]


def test_what_only_production_does_is_not_required() -> None:
    logs = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f:*"
    role = policy(("Allow", ["logs:CreateLogStream", "logs:PutLogEvents"], [logs]))
    assert verdicts(role, set()) == ([], [])


def test_every_skipped_scan_finding_is_justified_in_the_readme() -> None:
    config = (ROOT / "infra" / "checkov.yaml").read_text()
    skipped = [
        line.split("#")[0].strip(" -") for line in config.splitlines() if line.strip().startswith("- CKV")
    ]
    readme = (ROOT / "README.md").read_text()
    assert skipped
    assert [check for check in skipped if f"| {check} " not in readme] == []
