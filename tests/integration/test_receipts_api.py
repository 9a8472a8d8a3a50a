"""POST .../receipts takes no token: each reference proves itself (its HMAC with the app's key), a
forged or foreign one is rejected, a repeat is accepted and changes nothing."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from chalicelib import clock, deps
from chalicelib.models import receipt_refs
from chalicelib.store.stats import utc_day
from tests.conftest import Api, AppContext

TOKEN = "ab" * 32


def _ref(app_id: str, message_id: str = "m-1", index: int = 0, token: str = TOKEN) -> str:
    key = deps.services().receipt_keys.get_or_create(app_id)
    return receipt_refs.issue(key, app_id, message_id, 20000, 0, 0, index, token)


def _post(api: Api, app_id: str, receipts: list[dict[str, Any]], token: str | None = None) -> Any:
    return api.call("POST", f"/v1/apps/{app_id}/receipts", {"receipts": receipts}, token=token or "")


def test_a_reference_the_app_issued_is_accepted_without_a_token(app_ctx: AppContext) -> None:
    resp = _post(app_ctx.api, app_ctx.app_id, [{"r": _ref(app_ctx.app_id), "event": "delivered"}])
    assert resp.status_code == 202, resp.body
    assert resp.data == {"accepted": 1, "rejected": 0}


def test_a_forged_reference_is_rejected(app_ctx: AppContext) -> None:
    good = _ref(app_ctx.app_id)
    raw = bytearray(base64.urlsafe_b64decode(good))
    raw[5] ^= 1  # another message digest, the MAC left as it was
    forged = base64.urlsafe_b64encode(bytes(raw)).decode()
    resp = _post(
        app_ctx.api,
        app_ctx.app_id,
        [
            {"r": forged, "event": "delivered"},
            {"r": "x" * 40, "event": "opened"},
            {"r": "short", "event": "opened"},
        ],
    )
    assert resp.status_code == 202, resp.body
    assert resp.data == {"accepted": 0, "rejected": 3}


def test_another_apps_reference_is_rejected(app_ctx: AppContext, api: Api) -> None:
    from tests.conftest import OPERATOR_KEY

    other = api.call("POST", "/v1/apps", {"name": "Other"}, token=OPERATOR_KEY).data["appId"]
    foreign = _ref(other)
    _ref(app_ctx.app_id)  # the app has a key of its own
    resp = _post(api, app_ctx.app_id, [{"r": foreign, "event": "delivered"}])
    assert resp.data == {"accepted": 0, "rejected": 1}
    assert _post(api, other, [{"r": foreign, "event": "delivered"}]).data == {"accepted": 1, "rejected": 0}


def test_a_repeat_is_accepted_and_keeps_the_first_time(app_ctx: AppContext) -> None:
    # Given a delivered receipt at t0
    ref = _ref(app_ctx.app_id, "m-repeat")
    svc = deps.services()
    assert svc.messages.receipts is not None
    _post(app_ctx.api, app_ctx.app_id, [{"r": ref, "event": "delivered", "at": 1_700_000_000_000}])
    # When it is posted again, later, twice in one batch
    again = _post(
        app_ctx.api,
        app_ctx.app_id,
        [{"r": ref, "event": "delivered", "at": 1_700_000_500_000}, {"r": ref, "event": "delivered"}],
    )
    # Then both are accepted, and the stored time is still the first
    assert again.data == {"accepted": 2, "rejected": 0}
    stored = svc.messages.receipts.of_message(app_ctx.app_id, "m-repeat")
    assert [d for d, _ in stored.values()] == [1_700_000_000_000]


def test_only_new_receipts_are_counted(app_ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[tuple[int, int]] = []
    svc = deps.services()
    monkeypatch.setattr(svc.receipts, "count", lambda _a, _n, d, o: counted.append((d, o)))
    one, two = _ref(app_ctx.app_id, "m-count", 0), _ref(app_ctx.app_id, "m-count", 1, "cd" * 32)
    _post(app_ctx.api, app_ctx.app_id, [{"r": one, "event": "delivered"}])
    _post(app_ctx.api, app_ctx.app_id, [{"r": one, "event": "delivered"}, {"r": two, "event": "opened"}])
    _post(app_ctx.api, app_ctx.app_id, [{"r": one, "event": "opened"}, {"r": two, "event": "opened"}])
    # opened implies delivered: "two" became delivered and opened at once
    assert counted == [(1, 0), (1, 1), (0, 1)]


def test_what_receipts_changed_is_in_the_days_statistics(app_ctx: AppContext) -> None:
    # Given two devices' references of one message
    one, two = _ref(app_ctx.app_id, "m-stats", 0), _ref(app_ctx.app_id, "m-stats", 1, "cd" * 32)
    # When one is delivered, the other opened, and both are reported again
    _post(app_ctx.api, app_ctx.app_id, [{"r": one, "event": "delivered"}, {"r": two, "event": "opened"}])
    _post(app_ctx.api, app_ctx.app_id, [{"r": one, "event": "delivered"}, {"r": two, "event": "opened"}])
    # Then today's statistics count 2 delivered (opened implies delivered) and 1 opened, once
    today = utc_day(clock.now_ms()).isoformat()
    resp = app_ctx.api.call("GET", app_ctx.path(f"/stats?from={today}&to={today}"), token=app_ctx.admin)
    assert resp.status_code == 200, resp.body
    (day,) = resp.data["days"]
    assert (day["delivered"], day["opened"]) == (2, 1)


def test_an_app_that_never_sent_rejects_everything(app_ctx: AppContext) -> None:
    resp = _post(app_ctx.api, app_ctx.app_id, [{"r": "A" * 40, "event": "delivered"}])
    assert resp.status_code == 202 and resp.data == {"accepted": 0, "rejected": 1}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"receipts": []}, "receipts"),
        ({"receipts": [{"r": "x", "event": "read"}]}, "receipts.0.event"),
        ({"receipts": [{"r": "x" * 65, "event": "opened"}]}, "receipts.0.r"),
        ({"receipts": [{"r": "x", "event": "opened", "at": "now"}]}, "receipts.0.at"),
        ({"receipts": [{"r": "x", "event": "opened"}] * 101}, "receipts"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(app_ctx: AppContext, body: dict[str, Any], field: str) -> None:
    resp = app_ctx.api.call("POST", app_ctx.path("/receipts"), body, token="")
    assert resp.status_code == 400, resp.body
    assert field in [e["field"] for e in resp.data["error"]["details"]["errors"]]
