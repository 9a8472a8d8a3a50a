"""The daily report of push certificates that expire within 30 days (log line + metric)."""

from __future__ import annotations

import logging

import pytest

from apns_sandbox.pki import SandboxCA
from chalicelib import handlers
from tests.certs import PASSWORD, b64
from tests.conftest import AppContext


def upload(app_ctx: AppContext, ca: SandboxCA, name: str, days: int) -> int:
    p12 = ca.issue_push_certificate("com.example.chat", "production", PASSWORD, valid_days=days)
    resp = app_ctx.api.call(
        "POST",
        app_ctx.path("/credentials"),
        {"type": "p12", "name": name, "environment": "production", "p12": b64(p12), "password": PASSWORD},
        token=app_ctx.admin,
    )
    assert resp.status_code == 201, resp.body
    return int(resp.data["certificateId"])


def test_expiring_certificates_are_reported(
    app_ctx: AppContext,
    trusted_ca: SandboxCA,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    soon = upload(app_ctx, trusted_ca, "soon", 12)
    upload(app_ctx, trusted_ca, "later", 300)
    caplog.set_level(logging.WARNING, logger="chalicelib")
    count = handlers.report_expiring_credentials()
    mine = [r.getMessage() for r in caplog.records if app_ctx.app_id in r.getMessage()]
    assert len(mine) == 1
    assert f"push certificate {soon} (soon," in mine[0] and "upload a renewed one" in mine[0]
    assert count >= 1
    assert '"CredentialsExpiringSoon"' in capsys.readouterr().out  # the EMF metric line
