"""Secrets stay secret: no key, certificate, password or app secret in DynamoDB, logs or API answers."""

from __future__ import annotations

import logging

import boto3
import pytest

from apns_sandbox.pki import SandboxCA
from tests.certs import PASSWORD, b64, p256_pem
from tests.conftest import AppContext


def test_no_secret_material_in_dynamodb_logs_or_responses(
    app_ctx: AppContext, trusted_ca: SandboxCA, stack_env: dict, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    p12 = b64(trusted_ca.issue_push_certificate("com.example.chat", "production", PASSWORD))
    p8 = p256_pem()
    p8_body_lines = [line for line in p8.splitlines() if "-----" not in line]
    api, admin = app_ctx.api, app_ctx.admin
    answers = [
        api.call(
            "POST",
            app_ctx.path("/credentials"),
            {"type": "p12", "name": "prod", "environment": "production", "p12": p12, "password": PASSWORD},
            token=admin,
        ),
        api.call(
            "POST",
            app_ctx.path("/credentials"),
            {"type": "p12", "name": "bad", "environment": "production", "p12": p12, "password": "wrong-pw"},
            token=admin,
        ),
        api.call(
            "POST",
            app_ctx.path("/credentials"),
            {
                "type": "p8",
                "name": "key",
                "environment": "production",
                "p8": p8,
                "keyId": "ABC123DEFG",
                "teamId": "TEAM123456",
                "bundleId": "com.example.chat",
            },
            token=admin,
        ),
        api.call(
            "POST",
            app_ctx.path("/credentials"),
            {
                "type": "p8",
                "name": "key2",
                "environment": "production",
                "p8": p8[:200],
                "keyId": "ABC123DEFG",
                "teamId": "TEAM123456",
                "bundleId": "com.example.chat",
            },
            token=admin,
        ),
        api.call("GET", app_ctx.path("/credentials"), token=admin),
        api.call(
            "PUT", app_ctx.path(f"/users/bob/devices/{'ab' * 32}"), {"certificateName": "prod"}, token=admin
        ),
    ]
    assert [a.status_code for a in answers] == [201, 400, 201, 400, 200, 200]

    ddb = boto3.client("dynamodb", endpoint_url=stack_env["AWS_ENDPOINT_OVERRIDE"])
    items = ddb.scan(TableName=stack_env["TABLE_NAME"])["Items"]
    places = {
        "dynamodb": repr(items),
        "logs": "\n".join(r.getMessage() + str(r.exc_text or "") for r in caplog.records),
        "responses": "\n".join(a.body.decode() for a in answers),
    }
    secrets = {
        "password": PASSWORD,
        "p12": p12[100:160],
        "p8": p8_body_lines[1],
        "pem marker": "PRIVATE KEY",
        "certificate": "BEGIN CERTIFICATE",
        "app secret": app_ctx.secret_key,
    }
    for where, text in places.items():
        for what, secret in secrets.items():
            assert secret not in text, f"{what} found in {where}"
    assert any(app_ctx.app_id in repr(i) for i in items)  # the scan did see this app's items
