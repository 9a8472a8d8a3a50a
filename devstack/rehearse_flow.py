"""The rehearsal's run: the stack created, then the real handlers pushing a message through it.

Each function runs in a process of its own (``devstack/rehearse_worker.py``, one "container"),
from the unpacked deployment package, with the environment the stack gave it; the only
additions are what points it at this machine (the emulator's URL, fake credentials, the APNs
sandbox's host, port and CA) and the action recorder's file. The SQS event source mappings the
stack created are played by devstack's poller with each mapping's batch size; their SQS calls are
recorded as the function's (the mapping acts with the function's role).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

from devstack.rehearse import (
    BUCKET,
    PROJECT_DIR,
    REGION,
    Aws,
    Report,
    build_another_way,
    check_constraints,
    create_stack,
    references,
    split_unbuildable,
    translate,
)
from devstack.rehearse_dead_letters import dead_letter

BUNDLE = "com.example.rehearsal"


class Worker:
    """One function's container: a process holding the imported handler, invoked with events."""

    def __init__(self, config: dict[str, Any], env: dict[str, str], log: IO[bytes]) -> None:
        self.name = config["FunctionName"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.rehearse_worker", config["Handler"]],
            env=env,
            cwd=env["LAMBDA_TASK_ROOT"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        ready = self.answer()
        self.loaded_from = str(ready.get("ready"))

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited ({self.proc.wait()}): see its log")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def invoke(self, event: dict[str, Any]) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(event) + "\n")
        self.proc.stdin.flush()
        answer = self.answer()
        if "error" in answer:
            raise RuntimeError(f"{self.name} failed: {answer['error']}")
        return answer["result"]

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def emulator() -> Iterator[Any]:
    from devstack.fast_emulator import start_emulator

    emu = start_emulator()
    try:
        yield emu
    finally:
        emu.stop()


def app_routes(stage: str) -> set[tuple[str, str]]:
    """(path, method) of every route the app declares, read as chalice package reads them."""
    from chalice.cli.factory import CLIFactory

    config = CLIFactory(str(PROJECT_DIR), environ=dict(os.environ)).create_config_obj(
        chalice_stage_name=stage
    )
    return {
        (path, method.upper()) for path, methods in config.chalice_app.routes.items() for method in methods
    }


def rehearse(stage: str, build: Path, account_concurrency: int, actions_log: Path | None) -> Report:
    from apns_sandbox.testing import start_sandbox
    from devstack import aws_actions
    from infra.least_privilege import check_least_privilege

    report = Report()
    sam = json.loads((build / "sam.json").read_text())
    cfn = translate(sam, f"s3://{BUCKET}/deployment.zip")
    report.proved.append(
        f"aws-sam-translator turns build/{stage}/sam.json into {len(cfn['Resources'])} CloudFormation resources"
    )
    kept, removed = split_unbuildable(cfn)
    routes = app_routes(stage)
    # from here on, every client records the calls made on a function's behalf (the mappings')
    log_path = actions_log or Path(tempfile.mkstemp(prefix="rehearsal-actions-")[1])
    log_path.unlink(missing_ok=True)
    aws_actions.install(str(log_path), unattributed=False)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="rehearsal-") as tmp_dir:
        tmp = Path(tmp_dir)
        emu = stack.enter_context(emulator())
        aws = Aws(emu.url)
        physical = create_stack(aws, f"apns-push-{stage}", kept, build / "deployment.zip")
        report.proved.append(
            f"the emulator's CloudFormation created {len(physical)} of them: CREATE_COMPLETE"
        )
        physical.update(build_another_way(aws, removed, routes, report))
        check_constraints(aws, physical, cfn, report, account_concurrency)

        sandbox = start_sandbox(tmp / "sandbox")
        stack.callback(sandbox.stop)
        code = tmp / "code"
        with zipfile.ZipFile(build / "deployment.zip") as package:
            package.extractall(code)
        flow = Flow(aws, physical, cfn, sandbox, code, log_path, tmp, report)
        stack.callback(flow.stop)
        flow.run()
        check_least_privilege(aws, flow.functions, aws_actions.read(str(log_path)), report)
    if actions_log is None:
        log_path.unlink(missing_ok=True)
    return report


class Flow:
    def __init__(
        self,
        aws: Aws,
        physical: dict[str, str],
        cfn: dict[str, Any],
        sandbox: Any,
        code: Path,
        log: Path,
        tmp: Path,
        report: Report,
    ) -> None:
        self.aws, self.physical, self.cfn, self.sandbox, self.code, self.log, self.tmp, self.report = (
            aws,
            physical,
            cfn,
            sandbox,
            code,
            log,
            tmp,
            report,
        )
        self.functions: dict[str, dict[str, Any]] = {
            rid: aws.awslambda.get_function_configuration(FunctionName=physical[rid])
            for rid, res in cfn["Resources"].items()
            if res["Type"] == "AWS::Lambda::Function"
        }
        self.workers: dict[str, Worker] = {}
        body = next(r for r in cfn["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi")[
            "Properties"
        ]["Body"]
        from chalice.local import LambdaEventConverter, RouteMatcher

        self.converter = LambdaEventConverter(RouteMatcher(list(body["paths"])))

    def worker(self, rid: str) -> Worker:
        if rid not in self.workers:
            config = self.functions[rid]
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                **config.get("Environment", {}).get("Variables", {}),
                # what Lambda sets for every function
                "AWS_LAMBDA_FUNCTION_NAME": config["FunctionName"],
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.get("MemorySize", 128)),
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "LAMBDA_TASK_ROOT": str(self.code),
                # what points it at this machine instead of AWS and Apple
                "AWS_ACCESS_KEY_ID": "rehearsal",
                "AWS_SECRET_ACCESS_KEY": "rehearsal",
                "AWS_ENDPOINT_OVERRIDE": self.aws.url,
                **self.sandbox.service_env(),
                "TRUSTED_PUSH_ISSUERS_FILE": str(self.sandbox.ca_path),
                "AWS_ACTION_LOG": str(self.log),
                "REHEARSAL_TIMEOUT_S": str(config.get("Timeout", 3)),
                "PYTHONPATH": os.pathsep.join([str(self.code), str(PROJECT_DIR)]),
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            out = (self.tmp / f"{config['FunctionName']}.log").open("ab")
            self.workers[rid] = Worker(config, env, out)
        return self.workers[rid]

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()

    def api_function(self) -> str:
        permission = next(
            r
            for r in self.cfn["Resources"].values()
            if r["Type"] == "AWS::Lambda::Permission" and "apigateway" in json.dumps(r)
        )
        return next(
            iter(f for f in self.functions if f in json.dumps(permission["Properties"]["FunctionName"]))
        )

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """One request as API Gateway hands it to the API function (the template's paths matched)."""
        headers = {
            "content-type": "application/json",
            "host": "rehearsal.execute-api.us-east-1.amazonaws.com",
        }
        if token:
            headers["authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else b""
        event = self.converter.create_lambda_event(method, path, headers, data)
        if isinstance(event.get("body"), bytes):  # API Gateway hands the function text
            event["body"] = event["body"].decode()
        answer = self.worker(self.api_function()).invoke(event)
        raw = answer.get("body") or ""
        return int(answer["statusCode"]), (json.loads(raw) if raw else None)

    def expect(self, status: int, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        got, answer = self.call(method, path, body, token)
        if got != status:
            raise RuntimeError(f"{method} {path}: {got} {answer}, expected {status}")
        return answer

    def drain(self, timeout_s: float = 60, only: set[str] | None = None) -> int:
        """Play every event source mapping (``only``: those of these queues) until the queues are
        empty; answers the invocations."""
        from devstack import aws_actions
        from devstack.poller import QueuePoller

        pollers = []
        for rid, config in self.functions.items():
            for esm in self.aws.awslambda.list_event_source_mappings(FunctionName=config["FunctionName"])[
                "EventSourceMappings"
            ]:
                name = esm["EventSourceArn"].rsplit(":", 1)[-1]
                if only is not None and name not in only:
                    continue
                url = self.aws.sqs.get_queue_url(QueueName=name)["QueueUrl"]
                with aws_actions.as_function(
                    config["FunctionName"]
                ):  # the mapping reads the queue's attributes
                    poller = QueuePoller(
                        sqs=self.aws.sqs,
                        queue_url=url,
                        name=config["FunctionName"],
                        batch_size=esm["BatchSize"],
                        wait_s=0,
                        handler=lambda event, _ctx, rid=rid: self.worker(rid).invoke(event),
                    )
                pollers.append(poller)
        invocations, idle, deadline = 0, 0, time.monotonic() + timeout_s
        while idle < 3 and time.monotonic() < deadline:
            worked = 0
            for poller in pollers:
                with aws_actions.as_function(poller.name):
                    worked += poller.poll_once()
            invocations += bool(worked)
            idle = 0 if worked else idle + 1
            if not worked:
                time.sleep(0.3)
        return invocations

    def run(self) -> None:
        from chalicelib.services.auth import mint_token

        api = self.functions[self.api_function()]
        secret_id = api["Environment"]["Variables"]["OPERATOR_KEY_SECRET_ID"]
        operator = json.loads(self.aws.secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"])[
            "operatorKey"
        ]
        app = self.expect(201, "POST", "/v1/apps", {"name": "Rehearsal"}, operator)
        base = f"/v1/apps/{app['appId']}"
        admin = mint_token(app["secretKey"], app["appId"], "im-server", "admin")
        key = self.sandbox.issue_p8([BUNDLE])
        cred = self.expect(
            201,
            "POST",
            f"{base}/credentials",
            {
                "type": "p8",
                "name": "k",
                "environment": "production",
                "p8": key["p8"],
                "keyId": key["keyId"],
                "teamId": key["teamId"],
                "bundleId": BUNDLE,
            },
            admin,
        )
        token = self.sandbox.create_device(BUNDLE, "production")
        self.expect(
            200, "PUT", f"{base}/users/bob/devices/{token}", {"certificateId": cred["certificateId"]}, admin
        )
        # outcome webhooks: the send function queues the events, the webhook function tries to POST them
        # (nothing listens there: it records the try and queues them again, delayed)
        hook = {"url": "https://127.0.0.1:9/push-events", "events": ["message.completed", "recipient.failed"]}
        self.expect(200, "PATCH", f"{base}/settings", {"webhook": hook}, admin)
        message = {
            "messageId": "rehearsal-1",
            "sendTime": int(time.time()),
            "sender": {"userId": "alice", "nickname": "Alice"},
            "to": {"userId": "bob"},
            "elems": [{"type": "text", "text": "rehearsed"}],
        }
        self.expect(202, "POST", f"{base}/messages", message, admin)
        invocations = self.drain()
        received = self.sandbox.notifications(token)
        self.report.check(
            len(received) == 1 and "rehearsed" in json.dumps(received[0]["payload"]),
            f"a message posted to the API function went through {invocations} SQS-triggered invocations and reached the APNs sandbox once",
            f"the message posted to the API function reached the sandbox {len(received)} times",
        )
        deliveries = self.expect(200, "GET", f"{base}/messages/rehearsal-1/deliveries", None, admin)["items"]
        self.report.check(
            [d.get("status") for d in deliveries] == ["sent"],
            "the API function reports the device `sent`",
            f"the delivery report says {deliveries}",
        )
        hooks = self.expect(200, "GET", f"{base}/settings/webhook/deliveries", None, admin)["items"]
        self.report.check(
            any(h.get("outcome") == "retrying" for h in hooks),
            "the webhook function POSTed the message's outcome events and queued them again when refused",
            f"the webhook deliveries are {hooks}",
        )
        dead_letter(self, base, admin, token)
        self.more_of_the_api(base, admin, operator, token, cred["certificateId"])
        self.bad_records()
        self.scheduled()
        loaded = {w.name: w.loaded_from for w in self.workers.values()}
        self.report.check(
            all(path.startswith(str(self.code)) for path in loaded.values()),
            f"the handlers ran from the deployment package ({', '.join(sorted(loaded))})",
            f"handlers loaded from outside the package: {loaded}",
        )

    def more_of_the_api(self, base: str, admin: str, operator: str, token: str, cert_id: int) -> None:
        """The rest of what the API function does with AWS: each call a route makes, once."""
        gone = self.sandbox.create_device(BUNDLE, "production")
        self.expect(200, "PUT", f"{base}/users/carol/devices/{gone}", {"certificateId": cert_id}, admin)
        self.sandbox.uninstall(gone)  # APNs answers 410 Unregistered: the send function removes it
        self.expect(
            204, "PUT", f"{base}/groups/g1/members", {"add": [{"userId": "bob"}, {"userId": "carol"}]}, admin
        )
        self.expect(200, "GET", f"{base}/groups/g1/members", None, admin)
        group = {
            "messageId": "rehearsal-2",
            "sendTime": int(time.time()),
            "sender": {"userId": "alice", "nickname": "Alice"},
            "to": {"groupId": "g1", "groupName": "Rehearsal"},
            "elems": [{"type": "text", "text": "to the group"}],
        }
        self.expect(202, "POST", f"{base}/messages", group, admin)
        self.drain()
        self.expect(202, "POST", f"{base}/messages/rehearsal-2/recall", None, admin)
        self.drain()
        users = [{"userId": f"u{i}", "state": "background", "unreadCount": i} for i in range(30)]
        self.expect(200, "PUT", f"{base}/presence", {"users": users}, admin)
        self.expect(200, "PATCH", f"{base}/users/bob/push-config", {"mutedGroups": ["g9"]}, admin)
        self.expect(200, "POST", f"{base}/secret-key/rotate", None, operator)
        self.sandbox.add_fault(status=503, reason="ServiceUnavailable", count=1, deviceToken=token)
        retried = {**group, "messageId": "rehearsal-3", "to": {"userId": "bob"}}
        self.expect(202, "POST", f"{base}/messages", retried, admin)
        self.drain()  # the send function puts the chunk back on its queue, delayed: a retry
        self.expect(204, "DELETE", f"{base}/users/bob/devices/{token}", None, admin)
        self.expect(204, "DELETE", f"{base}/credentials/{cert_id}", None, admin)
        self.report.proved.append(
            "the API function's other AWS calls ran: group members, a group message and its recall, a push APNs refused (503) queued again for a retry, presence, push-config, key rotation, deletions"
        )

    def bad_records(self) -> None:
        """A record no function can read, on every queue a mapping consumes: dead-lettered with a reason."""
        consumed = {
            esm["EventSourceArn"].rsplit(":", 1)[-1]
            for config in self.functions.values()
            for esm in self.aws.awslambda.list_event_source_mappings(FunctionName=config["FunctionName"])[
                "EventSourceMappings"
            ]
        }
        for rid, config in self.functions.items():
            for esm in self.aws.awslambda.list_event_source_mappings(FunctionName=config["FunctionName"])[
                "EventSourceMappings"
            ]:
                name = esm["EventSourceArn"].rsplit(":", 1)[-1]
                url = self.aws.sqs.get_queue_url(QueueName=name)["QueueUrl"]
                self.aws.sqs.send_message(QueueUrl=url, MessageBody="not a record")
                self.drain()
                attrs = self.aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])[
                    "Attributes"
                ]
                dlq = json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"].rsplit(":", 1)[-1]
                if dlq in consumed:  # the send DLQ: its consumer settles and parks what it gets
                    dlq = json.loads(
                        self.aws.sqs.get_queue_attributes(
                            QueueUrl=self.aws.sqs.get_queue_url(QueueName=dlq)["QueueUrl"],
                            AttributeNames=["RedrivePolicy"],
                        )["Attributes"]["RedrivePolicy"]
                    )["deadLetterTargetArn"].rsplit(":", 1)[-1]
                dlq_url = self.aws.sqs.get_queue_url(QueueName=dlq)["QueueUrl"]
                got = self.aws.sqs.receive_message(
                    QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
                ).get("Messages", [])
                self.report.check(
                    len(got) == 1 and bool(got[0].get("MessageAttributes")),
                    f"{rid}: a record it cannot read is dead-lettered to {dlq}, with a reason",
                    f"{rid}: a bad record on {name} left {len(got)} messages on {dlq}: {got}",
                )
                for message in got:
                    self.aws.sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])

    def scheduled(self) -> None:
        """Every function the stack triggers on a schedule, invoked as EventBridge does."""
        for rule_id, rule in self.cfn["Resources"].items():
            if rule["Type"] != "AWS::Events::Rule":
                continue
            for target in rule["Properties"].get("Targets", []):
                rid = next(iter(references(target.get("Arn")) & set(self.functions)))
                event = {
                    "version": "0",
                    "id": "rehearsal",
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": "123456789012",
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "region": REGION,
                    "resources": [self.physical.get(rule_id, rule_id)],
                    "detail": {},
                }
                result = self.worker(rid).invoke(event)
                self.report.proved.append(
                    f"{rid}: runs on its schedule ({rule['Properties'].get('ScheduleExpression')}): answered {result}"
                )
