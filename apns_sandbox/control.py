"""The control API (credentials, devices, faults, inspection) and the web inbox, as one small
ASGI app served by hypercorn on the UI port. Errors use the product's shape:
`{"error": {"code": ..., "message": ...}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.resources
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from .state import ENVIRONMENTS, SandboxState, ValidationError, b64

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_BUNDLE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_]*")
_TEAM_RE = re.compile(r"[A-Z0-9]{10}")
_MAX_BODY = 1024 * 1024


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Request:
    def __init__(self, scope: Scope, body: bytes) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        self.body = body

    @classmethod
    def of_query(cls, query: dict[str, str]) -> Request:
        req = cls({"method": "GET", "path": "/"}, b"")
        req.query = dict(query)
        return req

    def json(self) -> Any:
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HttpError(400, "InvalidJson", f"request body is not valid JSON: {exc}") from exc

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise HttpError(400, "InvalidJson", "request body must be a JSON object")
        return data

    def int_query(self, name: str, default: int | None) -> int | None:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError as exc:
            raise HttpError(400, "InvalidQuery", f"{name} must be an integer") from exc


class Response:
    def __init__(self, status: int = 200, body: bytes = b"", content_type: str = "application/json") -> None:
        self.status, self.body, self.content_type = status, body, content_type

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(data, separators=(",", ":")).encode())


def _bundle_id(value: Any, field: str = "bundleId") -> str:
    if not isinstance(value, str) or not _BUNDLE_RE.fullmatch(value):
        raise HttpError(400, "InvalidBundleId", f"{field} must be a bundle ID like com.example.app")
    return value


def _environment(value: Any, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if value not in ENVIRONMENTS:
        raise HttpError(400, "InvalidEnvironment", "environment must be 'development' or 'production'")
    return str(value)


def _datetime(value: Any, field: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise HttpError(400, "InvalidDate", f"{field} must be an ISO 8601 date-time") from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


class ControlApp:
    """ASGI application. `ports` is filled in by the runner once the endpoints listen."""

    def __init__(self, state: SandboxState, ports: dict[str, int] | None = None) -> None:
        self.state = state
        self.ports = ports if ports is not None else {}
        self.shutting_down = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] == "/sandbox/events":
            await self._events(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > _MAX_BODY:
                await self._send(send, Response.json(_err("TooLarge", "request body over 1 MiB"), 413))
                return
            if not message.get("more_body"):
                break
        request = Request(scope, body)
        try:
            response = self.route(request)
        except HttpError as exc:
            response = Response.json(_err(exc.code, exc.message), exc.status)
        except ValidationError as exc:
            response = Response.json(_err("InvalidRequest", str(exc)), 400)
        await self._send(send, response)

    @staticmethod
    async def _send(send: Send, response: Response) -> None:
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.shutting_down.set()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- routing -------------------------------------------------------------------------------
    def route(self, req: Request) -> Response:
        m, path = req.method, req.path.rstrip("/") or "/"
        parts = [unquote(p) for p in path.strip("/").split("/")] if path != "/" else []
        if path == "/" or path == "/index.html":
            _allow(m, "GET")
            return Response(200, self._inbox_page(req.query), "text/html; charset=utf-8")
        if not parts or parts[0] != "sandbox":
            raise HttpError(
                404, "NotFound", f"no such path {req.path}; the control API lives under /sandbox/"
            )
        rest = parts[1:]
        match rest:
            case ["ca.pem"]:
                _allow(m, "GET")
                return Response(200, self.state.ca.cert_pem, "application/x-pem-file")
            case ["health"]:
                _allow(m, "GET")
                return Response.json(
                    {"status": "ok", "ports": self.ports, "stateDir": str(self.state.state_dir)}
                )
            case ["credentials", "p8"]:
                if m == "GET":
                    return Response.json({"items": [k.to_json() for k in self.state.keys.values()]})
                _allow(m, "POST")
                return self._issue_p8(req.json_object())
            case ["credentials", "p8", key_id]:
                _allow(m, "DELETE")
                if not self.state.revoke_p8(key_id):
                    raise HttpError(404, "KeyNotFound", f"no p8 key {key_id}")
                return Response(204)
            case ["credentials", "p12"]:
                _allow(m, "POST")
                return self._issue_p12(req.json_object())
            case ["devices"]:
                if m == "GET":
                    return Response.json({"items": [d.to_json() for d in self.state.devices.values()]})
                _allow(m, "POST")
                return self._add_device(req.json_object())
            case ["devices", token]:
                device = self.state.devices.get(token.lower())
                if device is None:
                    raise HttpError(404, "DeviceNotFound", f"no simulated device {token}")
                if m == "GET":
                    return Response.json(device.to_json())
                _allow(m, "DELETE")
                self.state.uninstall_device(token)
                return Response.json(device.to_json())
            case ["faults"]:
                if m == "GET":
                    return Response.json({"items": [f.to_json() for f in self.state.faults]})
                if m == "DELETE":
                    self.state.clear_faults()
                    return Response(204)
                _allow(m, "PUT", "POST")
                data = req.json()
                if isinstance(data, dict) and "connections" in data:
                    if set(data) != {"connections"}:
                        raise HttpError(400, "BadFault", "a connection fault is {connections} alone")
                    affected = self.state.fault_connections(str(data["connections"]))
                    return Response.json({"connections": data["connections"], "affected": affected})
                specs = data if isinstance(data, list) else [data]
                added = [self.state.add_fault(spec) for spec in specs]
                return Response.json(
                    {"added": [f.to_json() for f in added], "items": [f.to_json() for f in self.state.faults]}
                )
            case ["faults", fault_id]:
                _allow(m, "DELETE")
                before = len(self.state.faults)
                self.state.faults[:] = [f for f in self.state.faults if str(f.id) != fault_id]
                if len(self.state.faults) == before:
                    raise HttpError(404, "FaultNotFound", f"no fault {fault_id}")
                return Response(204)
            case ["notifications"]:
                if m == "DELETE":
                    self.state.clear_notifications()
                    self.state.reset_stats()
                    return Response(204)
                _allow(m, "GET")
                items = self.state.list_notifications(
                    req.query.get("deviceToken"), req.int_query("limit", None)
                )
                return Response.json({"items": items})
            case ["stats"]:
                if m == "DELETE":
                    self.state.reset_stats()
                    return Response(204)
                _allow(m, "GET")
                return Response.json(self.state.stats.to_json())
            case ["provider-tokens"]:
                _allow(m, "GET")
                uses = self.state.stats.provider_tokens.values()
                key_id, team_id = req.query.get("keyId"), req.query.get("teamId")
                return Response.json(
                    {
                        "items": [
                            u.to_json()
                            for u in uses
                            if (not key_id or u.key_id == key_id) and (not team_id or u.team_id == team_id)
                        ]
                    }
                )
            case ["inbox"]:
                _allow(m, "GET")
                return Response.json(self._inbox(InboxQuery.parse(req)))
            case ["reset"]:
                _allow(m, "POST")
                self.state.clear_notifications()
                self.state.reset_stats()
                self.state.clear_faults()
                self.state.clear_device_budgets()
                return Response(204)
        raise HttpError(404, "NotFound", f"no such path {req.path}")

    # --- handlers ------------------------------------------------------------------------------
    def _issue_p8(self, data: dict[str, Any]) -> Response:
        bundle_ids = data.get("bundleIds")
        if bundle_ids is None and "bundleId" in data:
            bundle_ids = [data["bundleId"]]
        if not isinstance(bundle_ids, list) or not bundle_ids:
            raise HttpError(400, "InvalidBundleIds", "bundleIds must be a non-empty list of bundle IDs")
        bundles = [_bundle_id(b, "bundleIds[]") for b in bundle_ids]
        team_id = data.get("teamId")
        if team_id is not None and (not isinstance(team_id, str) or not _TEAM_RE.fullmatch(team_id)):
            raise HttpError(400, "InvalidTeamId", "teamId must be 10 uppercase letters or digits")
        environment = _environment(data.get("environment"), optional=True)
        key, pem = self.state.issue_p8(bundles, team_id, environment)
        return Response.json(
            {
                "keyId": key.key_id,
                "teamId": key.team_id,
                "p8": pem,
                "bundleIds": sorted(key.bundle_ids),
                "environment": key.environment,
            },
            201,
        )

    def _issue_p12(self, data: dict[str, Any]) -> Response:
        bundle_id = _bundle_id(data.get("bundleId"))
        if data.get("type", "push") not in ("push", "voip"):
            raise HttpError(
                400, "InvalidType", "type must be 'push' (Apple Push Services) or 'voip' (VoIP Services)"
            )
        environment = _environment(data.get("environment"))
        assert environment is not None
        password = data.get("password")
        if password is not None and not isinstance(password, str):
            raise HttpError(400, "InvalidPassword", "password must be a string (or null for none)")
        valid_days = data.get("validDays", 365)
        if not isinstance(valid_days, int) or valid_days < 1:
            raise HttpError(400, "InvalidValidDays", "validDays must be a positive integer")
        team_id = data.get("teamId")
        if team_id is not None and (not isinstance(team_id, str) or not _TEAM_RE.fullmatch(team_id)):
            raise HttpError(400, "InvalidTeamId", "teamId must be 10 uppercase letters or digits")
        p12 = self.state.issue_p12(
            bundle_id,
            environment,
            password or None,
            valid_days=valid_days,
            not_before=_datetime(data.get("notBefore"), "notBefore"),
            not_after=_datetime(data.get("notAfter"), "notAfter"),
            universal=bool(data.get("universal", False)),
            team_id=team_id,
            voip=data.get("type", "push") == "voip",
        )
        from cryptography.hazmat.primitives.serialization import pkcs12

        _, cert, _ = pkcs12.load_key_and_certificates(p12, password.encode() if password else None)
        assert cert is not None
        return Response.json(
            {
                "p12": b64(p12),
                "password": password,
                "bundleId": bundle_id,
                "environment": environment,
                "subject": cert.subject.rfc4514_string(),
                "notBefore": cert.not_valid_before_utc.isoformat().replace("+00:00", "Z"),
                "expiresAt": cert.not_valid_after_utc.isoformat().replace("+00:00", "Z"),
                "universal": bool(data.get("universal", False)) and data.get("type", "push") != "voip",
            },
            201,
        )

    def _add_device(self, data: dict[str, Any]) -> Response:
        bundle_id = _bundle_id(data.get("bundleId"))
        environment = _environment(data.get("environment", "production"))
        assert environment is not None
        name = data.get("name")
        if name is not None and not isinstance(name, str):
            raise HttpError(400, "InvalidName", "name must be a string")
        device_type = data.get("type", "alert")
        if device_type not in ("alert", "voip"):
            raise HttpError(
                400, "InvalidType", "type must be 'alert' (an APNs token) or 'voip' (a PushKit token)"
            )
        count = data.get("count")
        if count is not None:
            # Bulk creation for benchmarks: {bundleId, environment, count} -> {deviceTokens: [...]}.
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100_000:
                raise HttpError(400, "InvalidCount", "count must be an integer from 1 to 100000")
            tokens = [
                self.state.add_device(bundle_id, environment, name, device_type).token for _ in range(count)
            ]
            return Response.json(
                {"deviceTokens": tokens, "bundleId": bundle_id, "environment": environment}, 201
            )
        device = self.state.add_device(bundle_id, environment, name, device_type)
        return Response.json(device.to_json(), 201)

    def _inbox(self, query: InboxQuery) -> dict[str, Any]:
        """One page of phones to draw: the most recently active devices first (then the newest),
        filtered, with how many match and how many there are in all."""
        state = self.state
        by_device = state.stats.by_device
        devices = list(state.devices.values())
        if query.device_token:
            devices = [d for d in devices if d.token == query.device_token.lower()]
        if query.bundle_id:
            devices = [d for d in devices if d.bundle_id == query.bundle_id]
        if query.q:
            q = query.q.lower()
            devices = [
                d
                for d in devices
                if d.token.startswith(q) or q in d.bundle_id.lower() or (d.name and q in d.name.lower())
            ]
        devices.sort(key=lambda d: (state.last_seq(d.token), d.created_at_ms), reverse=True)
        page = devices[query.offset : query.offset + query.devices]
        return {
            "version": state.version,
            "totalDevices": len(state.devices),
            "matchingDevices": len(devices),
            "offset": query.offset,
            "pageSize": query.devices,
            "stats": {"accepted": state.stats.accepted, "rejected": sum(state.stats.rejected.values())},
            "devices": [
                {
                    **d.to_json(),
                    "received": by_device.get(d.token, 0),
                    "notifications": state.list_notifications(d.token, query.per_device),
                }
                for d in page
            ],
        }

    def _inbox_page(self, query: dict[str, str]) -> bytes:
        """The inbox with its first data inlined, so it draws before `load` (no extra round trip)."""
        page = importlib.resources.files("apns_sandbox").joinpath("static/inbox.html").read_text()
        try:
            data: dict[str, Any] | None = self._inbox(InboxQuery.parse(Request.of_query(query)))
        except HttpError:
            data = None  # the page fetches /sandbox/inbox itself and shows the error
        initial = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
        return page.replace("/*INITIAL_DATA*/null", initial, 1).encode()

    # --- live updates (Server-Sent Events) -----------------------------------------------------
    async def _events(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        disconnected = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        watcher = asyncio.create_task(watch())
        version = -1
        try:
            while not disconnected.is_set() and not self.shutting_down.is_set():
                new = await self.state.wait_changed(version, 10.0)
                if new == version:
                    await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})
                    continue
                version = new
                payload = json.dumps({"version": version}).encode()
                await send(
                    {"type": "http.response.body", "body": b"data: " + payload + b"\n\n", "more_body": True}
                )
                await asyncio.sleep(0.25)  # coalesce bursts: at most 4 updates/s per viewer
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            watcher.cancel()
        with contextlib.suppress(Exception):  # the client may already be gone
            await send({"type": "http.response.body", "body": b"", "more_body": False})


@dataclass(frozen=True)
class InboxQuery:
    devices: int = 24  # page size
    offset: int = 0
    per_device: int = 30
    q: str | None = None  # token prefix, or part of the bundle ID or device name
    bundle_id: str | None = None
    device_token: str | None = None

    @classmethod
    def parse(cls, req: Request) -> InboxQuery:
        devices = req.int_query("devices", cls.devices)
        offset = req.int_query("offset", cls.offset)
        per_device = req.int_query("perDevice", cls.per_device)
        assert devices is not None and offset is not None and per_device is not None
        if not 1 <= devices <= 500:
            raise HttpError(400, "InvalidQuery", "devices (the page size) must be from 1 to 500")
        if offset < 0:
            raise HttpError(400, "InvalidQuery", "offset must be 0 or more")
        if not 1 <= per_device <= 1000:
            raise HttpError(400, "InvalidQuery", "perDevice must be from 1 to 1000")
        q = (req.query.get("q") or "").strip()
        if len(q) > 200:
            raise HttpError(400, "InvalidQuery", "q must be at most 200 characters")
        return cls(
            devices=devices,
            offset=offset,
            per_device=per_device,
            q=q or None,
            bundle_id=req.query.get("bundleId") or None,
            device_token=req.query.get("deviceToken") or None,
        )


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise HttpError(405, "MethodNotAllowed", f"use {' or '.join(allowed)} here")


def _err(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
