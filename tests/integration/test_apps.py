"""Apps: created with the operator key only; the answer carries the token-signing key once."""

from tests.conftest import OPERATOR_KEY, Api


def test_operator_creates_app(api: Api) -> None:
    resp = api.call("POST", "/v1/apps", {"name": "My chat"}, token=OPERATOR_KEY)
    assert resp.status_code == 201
    assert resp.data["name"] == "My chat"
    assert resp.data["appId"].startswith("app-")
    assert len(resp.data["secretKey"]) >= 32


def test_create_app_without_token_is_401(api: Api) -> None:
    resp = api.call("POST", "/v1/apps", {"name": "x"})
    assert resp.status_code == 401
    assert resp.data["error"]["code"] == "Unauthorized"
    assert "Bearer" in resp.data["error"]["message"]


def test_create_app_with_wrong_operator_key_is_401(api: Api) -> None:
    resp = api.call("POST", "/v1/apps", {"name": "x"}, token="not-the-key")
    assert resp.status_code == 401


def test_create_app_bad_bodies_are_400(api: Api) -> None:
    for body, field in (({}, "name"), ({"name": ""}, "name"), ({"name": "x", "extra": 1}, "extra")):
        resp = api.call("POST", "/v1/apps", body, token=OPERATOR_KEY)
        assert resp.status_code == 400, body
        assert resp.data["error"]["code"] == "ValidationError"
        assert resp.data["error"]["details"]["errors"][0]["field"] == field


def test_invalid_json_is_400(api: Api) -> None:
    resp = api.call("POST", "/v1/apps", raw=b"{not json", token=OPERATOR_KEY)
    assert resp.status_code == 400
    assert "not valid JSON" in resp.data["error"]["message"]


def test_json_array_body_is_400(api: Api) -> None:
    resp = api.call("POST", "/v1/apps", raw=b"[1]", token=OPERATOR_KEY)
    assert resp.status_code == 400
    assert "JSON object" in resp.data["error"]["message"]


def test_form_body_gets_our_error_shape(api: Api) -> None:
    resp = api.call(
        "POST",
        "/v1/apps",
        raw=b"x=1",
        token=OPERATOR_KEY,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 415
    assert resp.data["error"]["code"] == "UnsupportedMediaType"
    assert "application/json" in resp.data["error"]["message"]


def test_wrong_method_gets_our_error_shape(api: Api) -> None:
    resp = api.call("DELETE", "/v1/apps", token=OPERATOR_KEY)
    assert resp.status_code == 405
    assert resp.data["error"]["code"] == "MethodNotAllowed"
