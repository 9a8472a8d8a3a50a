"""What the seeds' clients call, as the API answers it (API.md "The seeds' own vocabulary"): the app's
foregroundLeaseSeconds for doForeground/doBackground, a TPNS registration's 400, and an ext over the
app's conventions' limit."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.models.settings import AppSettings
from chalicelib.services.settings import SettingsService
from tests.conftest import AppContext

TOKEN = "ab" * 32


def settings(app_ctx: AppContext, body: dict[str, Any]) -> Any:
    resp = app_ctx.api.call("PATCH", app_ctx.path("/settings"), body, token=app_ctx.admin)
    assert resp.status_code == 200, resp.body
    return resp.data


def report(app_ctx: AppContext, body: dict[str, Any], user: str = "bob") -> Any:
    resp = app_ctx.api.call("PUT", app_ctx.path(f"/users/{user}/app-state"), body, token=app_ctx.token(user))
    assert resp.status_code == 200, resp.body
    return resp.data


def test_lease_0_holds_foreground_until_the_app_reports_background(app_ctx: AppContext) -> None:
    # Given an app whose clients call doForeground once and doBackground when they leave (seed 000)
    settings(app_ctx, {"foregroundLeaseSeconds": 0})
    # When a client reports foreground without a lease
    state = report(app_ctx, {"state": "foreground"})
    # Then foreground holds with no end, until background is reported
    assert state["state"] == "foreground" and state["foregroundUntil"] is None
    got = app_ctx.api.call("GET", app_ctx.path("/users/bob/app-state"), token=app_ctx.token("bob"))
    assert got.data["state"] == "foreground" and got.data["foregroundUntil"] is None
    assert report(app_ctx, {"state": "background", "unreadCount": 2})["state"] == "background"


def test_the_apps_lease_is_the_default_and_an_explicit_lease_still_applies(app_ctx: AppContext) -> None:
    # Given an app with a 20-second lease
    settings(app_ctx, {"foregroundLeaseSeconds": 20})
    # When one client reports foreground without a lease and another with its own
    plain = report(app_ctx, {"state": "foreground"})
    own = report(app_ctx, {"state": "foreground", "leaseSeconds": 600}, user="carol")
    # Then the first holds 20 s, the second 600 s
    assert plain["foregroundUntil"] - plain["updatedAt"] == 20_000
    assert own["foregroundUntil"] - own["updatedAt"] == 600_000


def test_lease_0_applies_to_presence_reports_too(app_ctx: AppContext) -> None:
    settings(app_ctx, {"foregroundLeaseSeconds": 0})
    resp = app_ctx.api.call(
        "PUT",
        app_ctx.path("/presence"),
        {
            "users": [
                {"userId": "bob", "state": "foreground"},
                {"userId": "dan", "state": "foreground", "leaseSeconds": 30},
            ]
        },
        token=app_ctx.admin,
    )
    assert resp.status_code == 200, resp.body
    bob = app_ctx.api.call("GET", app_ctx.path("/users/bob/app-state"), token=app_ctx.admin).data
    dan = app_ctx.api.call("GET", app_ctx.path("/users/dan/app-state"), token=app_ctx.admin).data
    assert bob["foregroundUntil"] is None
    assert dan["foregroundUntil"] - dan["updatedAt"] == 30_000


def test_a_lease_change_affects_reports_made_after_it(app_ctx: AppContext) -> None:
    first = report(app_ctx, {"state": "foreground"})
    settings(app_ctx, {"foregroundLeaseSeconds": 0})
    # The earlier report keeps its lease; the next one has none
    assert first["foregroundUntil"] - first["updatedAt"] == 300_000
    assert report(app_ctx, {"state": "foreground"})["foregroundUntil"] is None


@dataclass
class CountingApps:
    """An app repository that counts reads."""

    reads: int = 0
    stored: dict[str, Any] = field(default_factory=lambda: {"foregroundLeaseSeconds": 0})

    def get_app(self, app_id: str) -> dict[str, Any]:
        self.reads += 1
        return self.stored


def test_presence_reads_the_setting_once_per_app_per_30_seconds() -> None:
    # Given a settings cache over a repository that counts reads, and a clock we move
    from chalicelib.models.push_config import PresenceBulk
    from chalicelib.services.users import UserService

    now = [1000.0]
    repo = CountingApps()
    cache = SettingsService(repo, monotonic=lambda: now[0])  # type: ignore[arg-type]

    class Users:
        def put_states(self, app_id: str, states: list[Any]) -> int:
            return len(states)

    service = UserService(Users(), None, settings=cache)  # type: ignore[arg-type]
    bulk = PresenceBulk.model_validate(
        {"users": [{"userId": f"u{i}", "state": "foreground"} for i in range(500)]}
    )
    # When presence is reported 100 times within 30 s, and once more after
    for _ in range(100):
        service.set_presence("app-1", bulk)
    assert repo.reads == 1
    now[0] += 31
    service.set_presence("app-1", bulk)
    # Then the setting was read once per 30 s, not per report
    assert repo.reads == 2
    assert AppSettings.from_stored(repo.stored).foreground_lease_seconds == 0


def test_a_tpns_registration_is_a_400_that_says_what_to_register(app_ctx: AppContext) -> None:
    # Given seed 001's registration: businessID = 0 and the TPNS token
    resp = app_ctx.api.call(
        "PUT", app_ctx.path(f"/users/bob/devices/{TOKEN}"), {"certificateId": 0}, token=app_ctx.token("bob")
    )
    # Then a 400 says TPNS tokens are not served and to register the APNs token with its certificate ID
    assert resp.status_code == 400, resp.body
    message = resp.data["error"]["message"]
    assert "TPNS tokens are not served" in message
    assert "APNs device token" in message and "certificateId" in message


@pytest.mark.parametrize(
    ("conventions", "ok", "too_big"),
    [(["tpns"], 3000, 3001), (["tencent", "agora"], 1536, 1537), (["tencent", "agora", "tpns"], 1024, 1025)],
)
def test_ext_over_the_apps_limit_is_a_400_stating_it(
    app_ctx: AppContext, conventions: list[str], ok: int, too_big: int
) -> None:
    settings(app_ctx, {"payloadConventions": conventions})

    def send(ext_bytes: int) -> Any:
        event = {
            "messageId": f"m-{ext_bytes}-{time.monotonic_ns()}",
            "sendTime": int(time.time()),
            "sender": {"userId": "alice"},
            "to": {"userId": "bob"},
            "elems": [{"type": "text", "text": "hi"}],
            "offlinePushInfo": {"ext": "x" * ext_bytes},
        }
        return app_ctx.api.call("POST", app_ctx.path("/messages"), event, token=app_ctx.admin)

    assert send(ok).status_code == 202
    refused = send(too_big)
    assert refused.status_code == 400
    assert f"at most {ok} bytes fit" in refused.data["error"]["message"]
    assert "offlinePushInfo.ext" in refused.data["error"]["message"]
