"""GET /v1/apps/{appId}/stats: every UTC day of the range (zeros included), the counters as added,
ranges checked (from <= to, at most 92 days), admin token or operator key only."""

from __future__ import annotations

import datetime as dt

from chalicelib import deps
from chalicelib.models.stats import DayCounts
from tests.conftest import OPERATOR_KEY, AppContext


def test_every_day_of_the_range_is_listed_with_what_was_added(app_ctx: AppContext) -> None:
    # Given counts added on two days, twice on the first
    repo = deps.services().stats_repo
    repo.add(app_ctx.app_id, dt.date(2026, 3, 1), DayCounts(messages=1, sent=2, skipped={"online": 1}))
    repo.add(app_ctx.app_id, dt.date(2026, 3, 1), DayCounts(sent=1, failed={"Unregistered": 1}))
    repo.add(app_ctx.app_id, dt.date(2026, 3, 3), DayCounts(delivered=2, opened=1))
    # When the three days around them are asked for (by the operator key too)
    path = app_ctx.path("/stats?from=2026-02-28&to=2026-03-03")
    resp = app_ctx.api.call("GET", path, token=app_ctx.admin)
    by_operator = app_ctx.api.call("GET", path, token=OPERATOR_KEY)
    # Then every day is there, oldest first, zeros included
    assert resp.status_code == 200, resp.body
    zero = {"messages": 0, "sent": 0, "skipped": {}, "failed": {}, "delivered": 0, "opened": 0}
    assert resp.data == {
        "days": [
            {"date": "2026-02-28", **zero},
            {
                **zero,
                "date": "2026-03-01",
                "messages": 1,
                "sent": 3,
                "skipped": {"online": 1},
                "failed": {"Unregistered": 1},
            },
            {"date": "2026-03-02", **zero},
            {**zero, "date": "2026-03-03", "delivered": 2, "opened": 1},
        ]
    }
    assert by_operator.data == resp.data


def test_a_range_that_is_not_ordered_days_of_at_most_92_is_a_400(app_ctx: AppContext) -> None:
    for query in (
        "from=2026-03-02&to=2026-03-01",
        "from=2026-01-01&to=2026-04-03",
        "from=x&to=2026-01-01",
        "to=2026-01-01",
    ):
        resp = app_ctx.api.call("GET", app_ctx.path(f"/stats?{query}"), token=app_ctx.admin)
        assert resp.status_code == 400, (query, resp.body)
        assert resp.data["error"]["details"]["errors"][0]["field"] in ("(body)", "from", "to"), resp.body
    ok = app_ctx.api.call("GET", app_ctx.path("/stats?from=2026-01-01&to=2026-04-02"), token=app_ctx.admin)
    assert ok.status_code == 200 and len(ok.data["days"]) == 92


def test_another_apps_counts_are_not_seen_and_a_user_token_is_refused(app_ctx: AppContext) -> None:
    deps.services().stats_repo.add("some-other-app", dt.date(2026, 5, 1), DayCounts(sent=5))
    resp = app_ctx.api.call("GET", app_ctx.path("/stats?from=2026-05-01&to=2026-05-01"), token=app_ctx.admin)
    assert resp.data["days"][0]["sent"] == 0
    user = app_ctx.api.call(
        "GET", app_ctx.path("/stats?from=2026-05-01&to=2026-05-01"), token=app_ctx.token("bob")
    )
    assert user.status_code == 403, user.body
