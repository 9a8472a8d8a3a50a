"""The token helper mints what the API accepts."""

from __future__ import annotations

import jwt
import pytest

from devstack.apptoken import main


def test_mints_admin_token_with_given_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--app", "app-1", "--user", "im-server", "--role", "admin", "--secret", "k" * 43]) == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, "k" * 43, algorithms=["HS256"])
    assert (claims["app"], claims["sub"], claims["role"]) == ("app-1", "im-server", "admin")
    assert claims["exp"] > claims["iat"]


def test_reads_secret_from_the_local_stack(stack_env: dict, api, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import OPERATOR_KEY

    app = api.call("POST", "/v1/apps", {"name": "cli"}, token=OPERATOR_KEY).data
    assert main(["--app", app["appId"], "--user", "bob", "--prefix", stack_env["SECRETS_PREFIX"]]) == 0
    token = capsys.readouterr().out.strip()
    assert jwt.decode(token, app["secretKey"], algorithms=["HS256"])["sub"] == "bob"


def test_access_log_lines_keep_only_a_token_prefix() -> None:
    from devstack.__main__ import redact

    token = "ab" * 32
    line = f'127.0.0.1 - - "PUT /v1/apps/app-1/users/bob/devices/{token} HTTP/1.1" 200 -\n'.encode()
    assert (
        redact(line) == b'127.0.0.1 - - "PUT /v1/apps/app-1/users/bob/devices/abababab... HTTP/1.1" 200 -\n'
    )
    assert redact(b"app-472dd0316ade messageId m-1") == b"app-472dd0316ade messageId m-1"
