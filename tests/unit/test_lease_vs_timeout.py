"""A chunk's lease outlives the send invocation holding it: the template derives the deployed lease
from the send function's timeout, and the settings refuse a lease that does not exceed it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chalicelib.settings import load_settings
from infra.stack import (
    SEND_FUNCTION,
    FunctionSpec,
    SqsTrigger,
    StageLimits,
    StageSpec,
    merge_template,
    send_lease_s,
)


def test_settings_refuse_a_lease_not_longer_than_the_send_timeout() -> None:
    with pytest.raises(ValidationError, match="SEND_LEASE_S=60 must exceed the send function's timeout"):
        load_settings({"SEND_LEASE_S": "60", "SEND_FUNCTION_TIMEOUT_S": "60"})


def test_settings_accept_a_lease_longer_than_the_send_timeout() -> None:
    assert load_settings({"SEND_LEASE_S": "121", "SEND_FUNCTION_TIMEOUT_S": "60"}).send_lease_s == 121


def test_the_template_derives_the_send_lease_from_the_send_timeout() -> None:
    spec = StageSpec(
        app_name="apns-push",
        stage="dev",
        table_name="t",
        intake_queue="i",
        send_queue="s",
        secrets_prefix="p/",
        operator_key_secret_id="p/k",
        functions=(FunctionSpec("fan_out", 90, 2), FunctionSpec(SEND_FUNCTION, 60, 2)),
        triggers=(SqsTrigger("fan_out", "i", 1), SqsTrigger(SEND_FUNCTION, "s", 1)),
        limits=StageLimits(api_rate_limit=1, api_burst_limit=1, log_retention_days=14, keep_data=False),
    )

    variables = merge_template(spec)["Resources"]["Send"]["Properties"]["Environment"]["Variables"]

    assert variables == {"SEND_LEASE_S": str(send_lease_s(60)), "SEND_FUNCTION_TIMEOUT_S": "60"}
    load_settings(variables)  # what the deployed send function reads is accepted


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_deployed_stages_send_timeout_gets_a_lease_the_settings_accept(stage: str) -> None:
    from devstack.lambda_runtime import deployed_timeouts

    timeout = int(deployed_timeouts(stage)[SEND_FUNCTION])

    lease = send_lease_s(timeout)

    assert lease > timeout
    assert load_settings({"SEND_LEASE_S": str(lease), "SEND_FUNCTION_TIMEOUT_S": str(timeout)})
