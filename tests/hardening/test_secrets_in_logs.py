"""Secrets hygiene over a full run: nothing secret, and no full device token, in any log line or output.

One run through the end-to-end stack (API in-process -> SQS on the emulator -> fan-out -> send ->
APNs sandbox over HTTP/2) with every log record captured from the root logger at DEBUG (the
service's own loggers at DEBUG too, as LOG_LEVEL=DEBUG would set them) and everything written to
file descriptors 1 and 2 (CloudWatch's view of a Lambda). The run covers the success path and the
error paths, where secrets usually slip into messages: a .p12 with the wrong password, a damaged
.p8, a forged token, BadDeviceToken (a development token registered with the production
credential), 410 Unregistered, a 503 storm, retries exhausted into the dead-letter queue and a
poison record.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from apns_sandbox.testing import SandboxProcess
from tests.conftest import OPERATOR_KEY, Api
from tests.e2e import conftest as e2e

stack = e2e.stack  # the e2e fixture: the SQS handlers pumped synchronously
Stack = e2e.Stack

BUNDLE = "com.example.hygiene"
P12_PASSWORD = "Hygiene-p12-Passw0rd!"
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
PEM_MARKERS = ("PRIVATE KEY", "BEGIN CERTIFICATE", "BEGIN EC", "BEGIN RSA")


class Run:
    def __init__(self, stack: Stack, sandbox: SandboxProcess) -> None:
        self.stack = stack
        self.api: Api = stack.api
        self.sandbox = sandbox
        self.secrets: dict[str, str] = {}  # what -> text that must not appear
        self.tokens: dict[str, str] = {}  # who -> full device token
        created = self.api.call("POST", "/v1/apps", {"name": "Hygiene"}, token=OPERATOR_KEY)
        assert created.status_code == 201, created.body
        self.app_id = created.data["appId"]
        self.secret_key = created.data["secretKey"]
        self.secrets["app secretKey"] = self.secret_key
        self.secrets["operator key"] = OPERATOR_KEY
        self.admin = self.token("im-server", "admin")

    def token(self, user: str, role: str) -> str:
        from chalicelib.services.auth import mint_token

        return mint_token(self.secret_key, self.app_id, user, role)  # type: ignore[arg-type]

    def call(self, method: str, suffix: str, body: Any = None, token: str | None = None) -> Any:
        return self.api.call(method, f"/v1/apps/{self.app_id}{suffix}", body, token=token or self.admin)

    def upload(self, body: dict[str, Any], expect: int) -> Any:
        resp = self.call("POST", "/credentials", body)
        assert resp.status_code == expect, resp.body
        return resp.data

    def device(self, user: str, environment: str, credential: int) -> str:
        token = self.sandbox.create_device(BUNDLE, environment)
        resp = self.call("PUT", f"/users/{user}/devices/{token}", {"certificateId": credential})
        assert resp.status_code == 200, resp.body
        self.tokens[user] = token
        return token

    def send(self, message_id: str, to: dict[str, Any]) -> dict[str, dict[str, Any]]:
        body = {
            "messageId": message_id,
            "sendTime": int(time.time()),
            "sender": {"userId": "alice", "nickname": "Alice"},
            "to": to,
            "elems": [{"type": "text", "text": "hello"}],
        }
        assert self.call("POST", "/messages", body).status_code == 202
        self.stack.pump()
        resp = self.call("GET", f"/messages/{message_id}/deliveries")
        assert resp.status_code == 200, resp.body
        return {d["userId"]: d for d in resp.data["items"]}


def _pem_lines(pem: bytes) -> list[str]:
    """The base64 body lines of a PEM: any one of them in a log means the key or certificate leaked."""
    return [line for line in pem.decode().splitlines() if line and "-----" not in line and len(line) >= 40]


def _add_p12_secrets(run: Run, p12_b64: str, password: str) -> None:
    der = base64.b64decode(p12_b64)
    key, cert, _ = pkcs12.load_key_and_certificates(der, password.encode())
    assert key is not None and cert is not None
    run.secrets["p12 password"] = password
    for i in range(0, len(p12_b64) - 48, 400):  # windows over the whole base64 text
        run.secrets[f"p12 base64 @{i}"] = p12_b64[i : i + 48]
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for i, line in enumerate(_pem_lines(key_pem)):
        run.secrets[f"p12 private key line {i}"] = line
    key_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    run.secrets["p12 private key (hex)"] = key_der.hex()[64:160]
    for i, line in enumerate(_pem_lines(cert.public_bytes(serialization.Encoding.PEM))):
        run.secrets[f"p12 certificate line {i}"] = line


def _add_p8_secrets(run: Run, p8: str) -> None:
    for i, line in enumerate(_pem_lines(p8.encode())):
        run.secrets[f"p8 key line {i}"] = line
    key = serialization.load_pem_private_key(p8.encode(), password=None)
    raw = key.private_numbers().private_value  # type: ignore[union-attr]
    run.secrets["p8 private scalar (hex)"] = f"{raw:064x}"
    run.secrets["p8 private scalar (dec)"] = str(raw)


def full_run(run: Run) -> None:
    sandbox = run.sandbox
    # Credentials: a production .p12, a development .p8; and the error paths of both uploads.
    issued = sandbox.issue_p12(BUNDLE, "production", password=P12_PASSWORD)
    _add_p12_secrets(run, issued["p12"], issued["password"])
    base = {"type": "p12", "environment": "production", "p12": issued["p12"]}
    run.upload({**base, "name": "wrong-pw", "password": "not-" + P12_PASSWORD}, 400)
    run.upload({**base, "name": "truncated", "p12": issued["p12"][:-100], "password": P12_PASSWORD}, 400)
    prod = run.upload({**base, "name": "prod-cert", "password": issued["password"]}, 201)["certificateId"]
    key = sandbox.issue_p8([BUNDLE])
    _add_p8_secrets(run, key["p8"])
    p8 = {"type": "p8", "keyId": key["keyId"], "teamId": key["teamId"], "bundleId": BUNDLE}
    run.upload({**p8, "name": "damaged", "environment": "development", "p8": key["p8"][:-60]}, 400)
    run.upload({**p8, "name": "not-pem", "environment": "development", "p8": key["p8"][30:-30]}, 400)
    dev = run.upload({**p8, "name": "dev-key", "environment": "development", "p8": key["p8"]}, 201)
    dev_id = dev["certificateId"]
    assert run.call("GET", "/credentials").status_code == 200

    # Devices: one per outcome.
    run.device("bob", "production", prod)  # sent (p12)
    run.device("erin", "development", dev_id)  # sent (p8, provider JWT)
    run.device("carol", "development", prod)  # BadDeviceToken: development token, production credential
    sandbox.uninstall(run.device("dave", "production", prod))  # 410 Unregistered
    run.device("frank", "production", prod)  # a 503 storm, then sent
    run.device("gina", "production", prod)  # 500 until we stop it: retries exhausted, dead letter
    own = run.call("GET", "/users/bob/devices", token=run.token("bob", "user"))
    assert own.status_code == 200
    assert run.call("GET", "/users/carol/devices", token=run.token("bob", "user")).status_code == 403
    forged = jwt.encode(
        {"app": run.app_id, "sub": "x", "role": "admin", "exp": int(time.time()) + 60}, "f" * 40, "HS256"
    )
    assert run.call("GET", "/credentials", token=forged).status_code == 401

    d = run.send("m-hygiene-1", {"groupId": "g", "members": ["bob", "carol", "dave", "erin"]})
    assert d["bob"]["status"] == d["erin"]["status"] == "sent", d
    assert d["carol"]["status"] == "failed" and d["carol"]["reason"].startswith("BadDeviceToken"), d
    assert d["dave"]["status"] == "failed" and d["dave"]["reason"].startswith("Unregistered"), d

    sandbox.add_fault(status=503, count=2)
    assert run.send("m-hygiene-2", {"userId": "frank"})["frank"]["status"] == "sent"

    sandbox.add_fault(status=500, reason="InternalServerError", deviceToken=run.tokens["gina"])
    try:
        gina = run.send("m-hygiene-3", {"userId": "gina"})["gina"]
    finally:
        sandbox.clear_faults()
    assert gina["status"] == "failed" and gina["reason"].startswith("gave up"), gina
    run.stack.dead_letters(run.stack.env["SEND_QUEUE_NAME"])

    # A poison record on each queue carrying secrets: the dead-lettering log must not echo it.
    poison = {"appId": run.app_id, "secretKey": run.secret_key, "devices": {"x": [run.tokens["bob"]]}}
    run.stack.send_raw(run.stack.env["SEND_QUEUE_NAME"], json.dumps(poison))
    run.stack.send_raw(run.stack.env["INTAKE_QUEUE_NAME"], json.dumps(poison))
    run.stack.pump()
    run.stack.dead_letters(run.stack.env["SEND_QUEUE_NAME"])
    run.stack.dead_letters(run.stack.env["INTAKE_QUEUE_NAME"])


def _record_text(record: logging.LogRecord) -> str:
    """Everything a log handler could write: the message, its arguments, extras and traceback."""
    parts = [record.getMessage(), repr(record.args)]
    parts += [f"{k}={v!r}" for k, v in vars(record).items() if k not in ("msg", "args", "exc_info")]
    if record.exc_info:
        parts.append("".join(logging.Formatter().formatException(record.exc_info)))
    return "\n".join(parts)


def test_no_secret_and_no_full_device_token_in_logs_or_output(
    stack: Stack, sandbox: SandboxProcess, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # root
    caplog.set_level(logging.DEBUG, logger="chalicelib")  # as LOG_LEVEL=DEBUG would
    run = Run(stack, sandbox)
    full_run(run)

    out, err = capfd.readouterr()
    places = {
        "logs": "\n".join(_record_text(r) for r in caplog.records),
        "stdout": out,
        "stderr": err,
    }
    assert len(caplog.records) > 5, "nothing was logged: is the capture wired?"
    leaks = []
    for where, text in places.items():
        for what, secret in run.secrets.items():
            if secret in text:
                leaks.append(f"{what} in {where}")
        for marker in PEM_MARKERS:
            if marker in text:
                leaks.append(f"PEM marker {marker!r} in {where}")
        for match in JWT_RE.findall(text):
            leaks.append(f"a JWT (bearer token) in {where}: {match[:20]}...")
        for user, token in run.tokens.items():
            if token.lower() in text.lower():
                line = next(ln for ln in text.splitlines() if token.lower() in ln.lower())
                leaks.append(f"{user}'s full device token in {where}: {_redact(line, run)[:300]}")
    assert not leaks, "\n".join(sorted(set(leaks)))


def _redact(line: str, run: Run) -> str:
    """The offending line, to find where it is logged, without repeating the secrets themselves."""
    for secret in run.secrets.values():
        line = line.replace(secret, "<secret>")
    for token in run.tokens.values():
        line = re.sub(re.escape(token), token[:8] + "...", line, flags=re.IGNORECASE)
    return line
