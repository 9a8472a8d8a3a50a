"""Credentials API against the AWS emulator: secret material only in Secrets Manager, metadata in DynamoDB."""

from __future__ import annotations

import json
import os

import boto3
import pytest

from apns_sandbox.pki import SandboxCA
from tests.certs import PASSWORD, b64, odd_p12, p256_pem
from tests.conftest import AppContext


def p12_body(ca: SandboxCA, name: str = "prod", environment: str = "production", **kw: object) -> dict:
    p12 = ca.issue_push_certificate("com.example.chat", environment, PASSWORD, **kw)  # type: ignore[arg-type]
    return {"type": "p12", "name": name, "environment": environment, "p12": b64(p12), "password": PASSWORD}


def p8_body(name: str = "token-key") -> dict:
    return {
        "type": "p8",
        "name": name,
        "environment": "production",
        "p8": p256_pem(),
        "keyId": "ABC123DEFG",
        "teamId": "TEAM123456",
        "bundleId": "com.example.chat",
    }


def test_upload_p12_answers_metadata_only(app_ctx: AppContext, trusted_ca: SandboxCA) -> None:
    body = p12_body(trusted_ca)
    resp = app_ctx.api.call("POST", app_ctx.path("/credentials"), body, token=app_ctx.admin)
    assert resp.status_code == 201, resp.body
    cred = resp.data
    assert cred["certificateId"] >= 1
    assert cred["bundleId"] == "com.example.chat"
    assert cred["environment"] == "production"
    assert cred["type"] == "p12"
    assert cred["expiresAt"] and cred["expiresSoon"] is False
    assert PASSWORD not in resp.body.decode() and "PRIVATE" not in resp.body.decode()


def test_certificate_ids_are_numeric_and_increase(app_ctx: AppContext, trusted_ca: SandboxCA) -> None:
    a = app_ctx.api.call("POST", app_ctx.path("/credentials"), p12_body(trusted_ca, "a"), token=app_ctx.admin)
    b = app_ctx.api.call("POST", app_ctx.path("/credentials"), p8_body("b"), token=app_ctx.admin)
    assert b.data["certificateId"] == a.data["certificateId"] + 1


def test_expires_soon_is_flagged(app_ctx: AppContext, trusted_ca: SandboxCA) -> None:
    resp = app_ctx.api.call(
        "POST", app_ctx.path("/credentials"), p12_body(trusted_ca, valid_days=10), token=app_ctx.admin
    )
    assert resp.status_code == 201
    assert resp.data["expiresSoon"] is True


def test_upload_p8_list_get_delete(app_ctx: AppContext) -> None:
    api, admin = app_ctx.api, app_ctx.admin
    created = api.call("POST", app_ctx.path("/credentials"), p8_body(), token=admin).data
    cid = created["certificateId"]
    assert created["keyId"] == "ABC123DEFG" and created["expiresAt"] is None
    listed = api.call("GET", app_ctx.path("/credentials"), token=admin).data["items"]
    assert [c["certificateId"] for c in listed] == [cid]
    assert api.call("GET", app_ctx.path(f"/credentials/{cid}"), token=admin).data == created
    assert api.call("DELETE", app_ctx.path(f"/credentials/{cid}"), token=admin).status_code == 204
    assert api.call("GET", app_ctx.path(f"/credentials/{cid}"), token=admin).status_code == 404
    assert api.call("DELETE", app_ctx.path(f"/credentials/{cid}"), token=admin).status_code == 404
    # the name is free again
    assert api.call("POST", app_ctx.path("/credentials"), p8_body(), token=admin).status_code == 201


def test_secret_lives_in_secrets_manager_and_is_deleted_with_the_credential(
    app_ctx: AppContext, trusted_ca: SandboxCA, stack_env: dict
) -> None:
    sm = boto3.client("secretsmanager", endpoint_url=stack_env["AWS_ENDPOINT_OVERRIDE"])
    cid = app_ctx.api.call(
        "POST", app_ctx.path("/credentials"), p12_body(trusted_ca), token=app_ctx.admin
    ).data["certificateId"]
    name = f"{stack_env['SECRETS_PREFIX']}{app_ctx.app_id}/credentials/{cid}"
    secret = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert "BEGIN PRIVATE KEY" in secret["privateKeyPem"]
    app_ctx.api.call("DELETE", app_ctx.path(f"/credentials/{cid}"), token=app_ctx.admin)
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.get_secret_value(SecretId=name)


def test_duplicate_name_is_409(app_ctx: AppContext) -> None:
    app_ctx.api.call("POST", app_ctx.path("/credentials"), p8_body("same"), token=app_ctx.admin)
    resp = app_ctx.api.call("POST", app_ctx.path("/credentials"), p8_body("same"), token=app_ctx.admin)
    assert resp.status_code == 409
    assert "already exists" in resp.data["error"]["message"]


def test_unknown_app_is_404_for_operator_minted_admin(app_ctx: AppContext) -> None:
    resp = app_ctx.api.call("GET", "/v1/apps/app-nope/credentials", token=app_ctx.admin)
    assert resp.status_code == 403  # the token belongs to another app


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b, ca: b.update(password="wrong"), "WrongPassword"),
        (lambda b, ca: b.update(p12=b64(b"garbage" * 50)), "NotPkcs12"),
        (lambda b, ca: b.update(p12="***"), "NotBase64"),
        (lambda b, ca: b.update(environment="development"), "EnvironmentMismatch"),
        (lambda b, ca: b.update(p12=b64(odd_p12(ca, cn="www.example.com"))), "NotPushCertificate"),
        (lambda b, ca: b.update(p12=b64(odd_p12(ca, uid=None))), "MissingBundleId"),
        (
            lambda b, ca: b.update(
                p12=b64(
                    SandboxCA.create("Stranger").issue_push_certificate("com.x.y", "production", PASSWORD)
                )
            ),
            "UntrustedIssuer",
        ),
    ],
)
def test_bad_p12_upload_is_400_with_code(
    app_ctx: AppContext, trusted_ca: SandboxCA, mutate, code: str
) -> None:
    body = p12_body(trusted_ca)
    mutate(body, trusted_ca)
    resp = app_ctx.api.call("POST", app_ctx.path("/credentials"), body, token=app_ctx.admin)
    assert resp.status_code == 400, resp.body
    assert resp.data["error"]["code"] == code
    assert PASSWORD not in resp.body.decode()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "Prod (AppStore)"}, "name"),
        ({"password": ""}, "password"),
        ({"password": None}, "password"),
        ({"environment": "staging"}, "environment"),
        ({"type": "pem"}, "type"),
        ({"p12": ""}, "p12"),
    ],
)
def test_p12_body_validation(app_ctx: AppContext, trusted_ca: SandboxCA, change: dict, field: str) -> None:
    body = {**p12_body(trusted_ca), **change}
    resp = app_ctx.api.call("POST", app_ctx.path("/credentials"), body, token=app_ctx.admin)
    assert resp.status_code == 400
    fields = [e["field"] for e in resp.data["error"]["details"]["errors"]]
    assert field in fields[0], fields


def test_missing_password_is_400(app_ctx: AppContext, trusted_ca: SandboxCA) -> None:
    body = p12_body(trusted_ca)
    del body["password"]
    resp = app_ctx.api.call("POST", app_ctx.path("/credentials"), body, token=app_ctx.admin)
    assert resp.status_code == 400
    assert "password: this field is required" in resp.data["error"]["message"]


def test_oversized_p12_is_refused_before_parsing(app_ctx: AppContext, trusted_ca: SandboxCA) -> None:
    body = {**p12_body(trusted_ca), "p12": "A" * (70 * 1024)}
    resp = app_ctx.api.call("POST", app_ctx.path("/credentials"), body, token=app_ctx.admin)
    assert resp.status_code == 400
    assert resp.data["error"]["details"]["errors"][0]["field"] == "p12"


@pytest.mark.parametrize(
    ("change", "code_or_field"),
    [
        ({"keyId": "SHORT"}, "keyId"),
        ({"teamId": "toolongteamid"}, "teamId"),
        ({"bundleId": "not a bundle"}, "bundleId"),
        ({"p8": "hello"}, "NotP8"),
    ],
)
def test_bad_p8_upload(app_ctx: AppContext, change: dict, code_or_field: str) -> None:
    resp = app_ctx.api.call(
        "POST", app_ctx.path("/credentials"), {**p8_body(), **change}, token=app_ctx.admin
    )
    assert resp.status_code == 400
    err = resp.data["error"]
    assert err["code"] == code_or_field or err["details"]["errors"][0]["field"] == code_or_field


def test_bad_certificate_id_in_path(app_ctx: AppContext) -> None:
    resp = app_ctx.api.call("GET", app_ctx.path("/credentials/abc"), token=app_ctx.admin)
    assert resp.status_code == 400
    assert "positive integer" in resp.data["error"]["message"]


def test_user_token_cannot_manage_credentials(app_ctx: AppContext) -> None:
    resp = app_ctx.api.call("GET", app_ctx.path("/credentials"), token=app_ctx.token("bob"))
    assert resp.status_code == 403


def test_untrusted_issuer_config_missing_is_503(app_ctx: AppContext, trusted_ca: SandboxCA, tmp_path) -> None:
    from chalicelib import deps

    old = os.environ["TRUSTED_PUSH_ISSUERS_FILE"]
    os.environ["TRUSTED_PUSH_ISSUERS_FILE"] = str(tmp_path / "missing.pem")
    deps.reset()
    try:
        resp = app_ctx.api.call(
            "POST", app_ctx.path("/credentials"), p12_body(trusted_ca), token=app_ctx.admin
        )
        assert resp.status_code == 503
        assert resp.data["error"]["code"] == "NotConfigured"
    finally:
        os.environ["TRUSTED_PUSH_ISSUERS_FILE"] = old
        deps.reset()
