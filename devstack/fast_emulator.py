"""The embedded AWS emulator: moto's full server app, safe under concurrency, memory bounded, faster.

Same interface as ``devstack.emulator`` (``start_emulator(port, quiet) -> Emulator``)
and the same thing underneath: moto's complete WSGI application
(``DomainDispatcherApplication(create_backend_app)``, every service, ``/moto-api/``),
served over HTTP on loopback by one child process, so all clients share its state.

Correctness and memory (each patch is tested in ``tests/devstack/test_fast_emulator.py``
against moto's unpatched behaviour):

* **One request at a time** (``SerializedApp``): moto is not thread-safe, and the server
  runs requests on many threads.  An SQS long poll waits *outside* the lock
  (``_patch_sqs_long_poll``), so a poller waiting 20 s for messages stalls nobody.
* **Rollback snapshots of touched items only** (``_patch_transact_write_items``): moto
  deep-copied whole tables for every TransactWriteItems and, when one was cancelled,
  put the copies back in place of the tables.
* **No record of every item version ever made** (``_patch_instance_tracking``): moto's
  model-instance tracker kept every DynamoDB item and SQS message it created, forever.

Speed: ``apply_patches()`` also removes per-request work in moto that does not change
any response:

* ``moto.backends.list_of_moto_modules`` lists moto's package directory (``listdir``
  plus one ``stat`` per entry) on *every* request to route it; the listing is static,
  so it is computed once.
* ``BaseResponse.call_action`` runs ``inspect.getmembers`` on the handler class on
  every request; the method names of a class are cached per class.
* DynamoDB responses are serialized by moto's generic, model-driven serializer,
  which probes ~10 members x ~4 key aliases for every attribute value of every item
  (90 % of a 100-key BatchGetItem).  A subclass serializes the ``AttributeValue``
  shape directly when the value is the plain ``{type: value}`` dict moto produces,
  and defers to the generic code for anything else, so output is byte-identical.
* The per-request access log line of werkzeug's dev server is not formatted/written
  (it went to /dev/null with ``quiet=True`` anyway).

Limits measured with ``python -m devstack.emulator_limits`` are in the README
("Emulator limits").

Serve by hand with ``python -m devstack.fast_emulator -H 127.0.0.1 -p PORT [--server granian|werkzeug]``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import signal
import subprocess
import sys
import threading
from typing import Any

from devstack.emulator import Emulator, free_port, wait_http

_PATCHED = False
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Fallback(Exception):
    pass


def _patch_module_listing() -> None:
    import moto.backends as backends

    original = backends.list_of_moto_modules
    if getattr(original, "_fast_emulator", False):
        return
    modules = tuple(original())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    list_of_moto_modules._fast_emulator = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules  # type: ignore[assignment,unused-ignore]


def _patch_method_names() -> None:
    import moto.core.responses as core_responses

    original = core_responses.method_names_from_class  # type: ignore[attr-defined]
    if getattr(original, "_fast_emulator", False):
        return
    cache: dict[type, frozenset[str]] = {}

    def method_names_from_class(clazz: Any) -> frozenset[str]:
        # Only ever used for ``action in method_names``.
        names = cache.get(clazz)
        if names is None:
            names = cache[clazz] = frozenset(original(clazz))
        return names

    method_names_from_class._fast_emulator = True  # type: ignore[attr-defined]
    core_responses.method_names_from_class = method_names_from_class  # type: ignore[assignment,attr-defined]


def _patch_dynamodb_serializer() -> None:
    from moto.core import serialize

    if "dynamodb" in serialize.SERVICE_SPECIFIC_SERIALIZERS and getattr(
        serialize.SERVICE_SPECIFIC_SERIALIZERS["dynamodb"].get("json"), "_fast_emulator", False
    ):
        return
    base = serialize.get_serializer_class("dynamodb", "json")
    scalar_string = {"S", "N"}
    string_sets = {"SS", "NS"}
    booleans = {"NULL", "BOOL"}

    class FastDynamoDBJSONSerializer(base):  # type: ignore[valid-type,misc]
        """Generic JSON serializer plus a direct path for DynamoDB ``AttributeValue``s.

        The generic path resolves each of the 10 members of AttributeValue through the
        attribute picker (aliases such as ``ListAttributeValue``/``list_attribute_value``/
        ``L``/``l``).  For the single-key ``{type: value}`` dicts that
        ``dynamo_to_dict`` produces, exactly one member resolves, to ``value[type]``,
        and the rest are None; this class computes that result directly.  Any value
        that does not look exactly like that is handed to the generic code.
        """

        _fast_emulator = True

        def _attribute_value(self, value: Any) -> dict[str, Any]:
            if type(value) is not dict or len(value) != 1:
                raise _Fallback
            ((kind, inner),) = value.items()
            if kind in scalar_string:
                if type(inner) is not str:
                    raise _Fallback
                return {kind: inner}
            if kind == "M":
                if type(inner) is not dict or any(type(k) is not str for k in inner):
                    raise _Fallback
                av = self._attribute_value
                return {"M": {k: av(v) for k, v in inner.items()}}
            if kind == "L":
                if type(inner) is not list:
                    raise _Fallback
                av = self._attribute_value
                return {"L": [av(v) for v in inner]}
            if kind in booleans:
                if type(inner) is not bool:
                    raise _Fallback
                return {kind: inner}
            if kind in string_sets:
                if type(inner) is not list or any(type(v) is not str for v in inner):
                    raise _Fallback
                return {kind: list(inner)}
            if kind == "B":
                if type(inner) not in (bytes, str):
                    raise _Fallback
                return {"B": self._base64(inner)}
            if kind == "BS":
                if type(inner) is not list or any(type(v) not in (bytes, str) for v in inner):
                    raise _Fallback
                return {"BS": [self._base64(v) for v in inner]}
            raise _Fallback

        def _serialize_type_structure(self, serialized: Any, value: Any, shape: Any, key: str) -> None:
            if key and shape.name == "AttributeValue" and self._fast_ok:
                try:
                    result = self._attribute_value(value)
                except _Fallback:
                    pass
                else:
                    serialized[self.get_serialized_name(shape, key)] = result
                    return
            super()._serialize_type_structure(serialized, value, shape, key)

        @functools.cached_property
        def _fast_ok(self) -> bool:
            picker = self._value_picker
            return (
                self.service_model.service_name == "dynamodb"
                and type(picker) is serialize.XFormedAttributePicker
                and not picker.response_transformers
                and list(picker.alias_providers) == list(serialize.DEFAULT_ALIAS_PROVIDERS)
            )

    serialize.SERVICE_SPECIFIC_SERIALIZERS.setdefault("dynamodb", {})["json"] = FastDynamoDBJSONSerializer


def _patch_transact_write_items() -> None:
    """A transaction's rollback snapshot holds copies of the items it touches, not of whole tables.

    moto deep-copies every table a transaction names (once per *item* of the
    transaction) before writing, and on cancellation puts those copies back in
    place of the tables: on a 10,000-item table that is ~10 MB and ~0.2 s per
    transaction, and a cancelled one throws away every write other requests made
    meanwhile.  Here the snapshot of a table is a ``TouchedItems``: copies of the
    (at most 100) items the transaction names, put back one by one on rollback.

    The change is made to moto's own source text of the method (three spots), so
    the method stays moto's code; if that text differs in another moto version,
    nothing is patched and a warning says so.
    """
    import inspect
    import textwrap

    import moto.dynamodb.models as models

    original = models.DynamoDBBackend.transact_write_items
    if getattr(original, "_fast_emulator", False):
        return
    try:
        source = textwrap.dedent(inspect.getsource(original))
    except (OSError, TypeError):
        source = ""
    once = "if table_name and table_name in self.tables:"
    snapshot = re.compile(r"copy\.deepcopy\(\s*self\.tables\[table_name\]\s*\)")
    restore = "self.tables[table_name] = original_table_state[table_name]"
    if source.count(once) != 1 or len(snapshot.findall(source)) != 1 or source.count(restore) != 2:
        _warn("moto's DynamoDBBackend.transact_write_items changed: rollback snapshots stay whole tables")
        return
    source = source.replace(once, once[:-1] + " and table_name not in original_table_state:")
    source = snapshot.sub(
        "_fast_emulator_TouchedItems(self.tables[table_name], table_name, transact_items)", source
    )
    source = source.replace(restore, "original_table_state[table_name].restore()")
    models._fast_emulator_TouchedItems = TouchedItems  # type: ignore[attr-defined]
    namespace: dict[str, Any] = {}
    exec(  # noqa: S102 (moto's own method source with the snapshot narrowed)
        compile(source, inspect.getsourcefile(original) or "<moto>", "exec"), models.__dict__, namespace
    )
    patched = namespace["transact_write_items"]
    patched.__qualname__ = original.__qualname__
    patched._fast_emulator = True
    patched.__wrapped__ = original
    models.DynamoDBBackend.transact_write_items = patched  # type: ignore[method-assign]


class TouchedItems:
    """Rollback snapshot of one table for one transaction: a copy of each item the transaction names
    (or "absent"), restored in place, newest first, if the transaction is cancelled."""

    def __init__(self, table: Any, table_name: str, transact_items: list[dict[str, Any]]) -> None:
        import copy

        from moto.dynamodb.models.dynamo_type import DynamoType

        self.table = table
        self.saved: list[tuple[Any, Any, Any]] = []
        for entry in transact_items:
            for op in entry.values():
                if not isinstance(op, dict) or op.get("TableName") != table_name:
                    continue
                key = op.get("Key") or op.get("Item") or {}
                try:
                    hash_key = DynamoType(key[table.hash_key_attr])
                    range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                    current = table.get_item(hash_key, range_key)
                except Exception:  # noqa: S112 (a malformed key: moto refuses that operation unwritten)
                    continue
                self.saved.append((hash_key, range_key, copy.deepcopy(current)))
        shard = table.stream_shard
        self.stream_records = len(shard.items) if shard is not None else 0

    def restore(self) -> None:
        items = self.table.items
        for hash_key, range_key, item in reversed(self.saved):
            if range_key is None:
                if item is None:
                    items.pop(hash_key, None)
                else:
                    items[hash_key] = item
            elif item is None:
                if hash_key in items:
                    items[hash_key].pop(range_key, None)
            else:
                items[hash_key][range_key] = item
        shard = self.table.stream_shard
        if shard is not None:  # as moto's whole-table restore did: no stream records of a cancelled write
            del shard.items[self.stream_records :]


def _patch_instance_tracking() -> None:
    """Stop moto keeping every DynamoDB item and SQS message it ever made.

    moto's ``BaseModel.__new__`` appends each instance of every model class to a
    class-level list (``instances_tracked``, for the ``/moto-api/`` dashboard) that
    is never pruned.  DynamoDB ``Item``s are made on every put, update and copy and
    SQS ``Message``s on every receive (a copy per message), so the list keeps every
    version of every item ever written: memory grows with traffic, not with data.
    Those two classes are left out of the list; everything else is still tracked.
    """
    from moto.core.common_models import BaseModel
    from moto.dynamodb.models.dynamo_type import Item
    from moto.sqs.models import Message

    if getattr(BaseModel.__new__, "_fast_emulator", False):
        return
    untracked = (Item, Message)

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        instance = object.__new__(cls)
        if not issubclass(cls, untracked):
            cls.instances_tracked.append(instance)  # type: ignore[attr-defined]
        return instance

    new._fast_emulator = True  # type: ignore[attr-defined]
    new.__wrapped__ = BaseModel.__dict__["__new__"]  # type: ignore[attr-defined]
    BaseModel.__new__ = staticmethod(new)  # type: ignore[method-assign,assignment]


# ---- one request at a time inside moto ------------------------------------------------------------

_MOTO_LOCK = threading.Lock()
_holder = threading.local()


class SerializedApp:
    """WSGI middleware: moto handles one request at a time.

    moto's backends are plain dicts and lists without locks; requests on many
    server threads at once fail ("dictionary changed size during iteration") or
    interleave inside a transaction.  Every request therefore runs under one lock,
    except while an SQS ReceiveMessage long poll waits for messages (see
    ``_patch_sqs_long_poll``).  The response is produced inside the lock, so
    nothing of moto runs outside it.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with _MOTO_LOCK:
            _holder.held = True
            try:
                result = self.app(environ, start_response)
                try:
                    return list(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            finally:
                _holder.held = False


def _patch_sqs_long_poll() -> None:
    """An SQS long poll waits with moto's lock released.

    moto's ``receive_message`` scans the queue and, finding nothing, calls
    ``Queue.wait_for_messages(1)`` in a loop until ``WaitTimeSeconds`` is over.
    Holding the request lock there would stop every other request (and so the
    SendMessage that would end the wait) for up to 20 s.  The patched wait takes
    the queue's condition, releases the request lock, waits to be notified (moto
    notifies on every SendMessage) or for the timeout, and takes the lock back
    before moto scans again.  It also waits when visible messages could not be
    delivered (a busy FIFO group), where moto's ``wait_for`` would return at once
    and spin.
    """
    import moto.sqs.models as sqs_models

    original = sqs_models.Queue.wait_for_messages
    if getattr(original, "_fast_emulator", False):
        return

    def wait_for_messages(self: Any, timeout: int) -> None:
        if not getattr(_holder, "held", False):  # moto used in-process, without the middleware
            original(self, timeout)
            return
        condition = self._messages_lock
        condition.acquire()
        _MOTO_LOCK.release()  # a sender takes the lock, then the condition: no wake-up is lost
        try:
            condition.wait(timeout)
        finally:
            condition.release()
            _MOTO_LOCK.acquire()  # never while holding the condition (senders take it the other way round)

    wait_for_messages._fast_emulator = True  # type: ignore[attr-defined]
    wait_for_messages.__wrapped__ = original  # type: ignore[attr-defined]
    sqs_models.Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]


def _warn(message: str) -> None:
    print(f"fast_emulator: {message}", file=sys.stderr, flush=True)


def apply_patches() -> None:
    global _PATCHED
    if _PATCHED:
        return
    _patch_module_listing()
    _patch_method_names()
    _patch_dynamodb_serializer()
    _patch_transact_write_items()
    _patch_instance_tracking()
    _patch_sqs_long_poll()
    _PATCHED = True


def make_app(serialize: bool = True) -> Any:
    """moto's full server application (all services), with the patches applied, one request at a time
    (``serialize=False`` only to show, in tests, what the lock prevents)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    apply_patches()
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # type: ignore[attr-defined]  # as moto.server does
    return SerializedApp(app) if serialize else app


def _granian_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("granian") is not None


def serve(host: str, port: int, server: str = "auto") -> None:
    if "MOTO_PORT" not in os.environ:
        os.environ["MOTO_PORT"] = str(port)
    if server == "auto":
        server = "granian" if _granian_available() else "werkzeug"

    if server == "granian":
        from granian import Granian  # type: ignore[import-not-found,unused-ignore,attr-defined]
        from granian.constants import Interfaces  # type: ignore[import-not-found,unused-ignore]

        Granian(
            "devstack.fast_emulator:make_app",
            address=host,
            port=port,
            interface=Interfaces.WSGI,
            factory=True,
            workers=1,
            # SQS long polls hold a thread for up to WaitTimeSeconds (outside moto's lock),
            # so allow plenty of concurrent requests; the rest queue on the lock.
            blocking_threads=int(os.environ.get("FAST_EMULATOR_THREADS", "64")),
            workers_kill_timeout=5,
            log_enabled=False,
        ).serve()
        return

    def _exit(signum: Any, frame: Any) -> None:
        sys.exit(0)

    signal.signal(signal.SIGINT, _exit)
    signal.signal(signal.SIGTERM, _exit)
    app = make_app()

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import run_simple

    class QuietMotoRequestHandler(MotoRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            pass

    run_simple(host, port, app, threaded=True, request_handler=QuietMotoRequestHandler)


class FastEmulator(Emulator):
    """``Emulator`` whose stop() also ends the server's worker process (granian runs
    the app in a child process; the server is started in its own session)."""

    def stop(self) -> None:
        if self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        # Whatever is left of the group (a worker stuck in a long poll) is killed.
        _signal_group(self.proc, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(5)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # the child is a session (and group) leader


def emulator_command(port: int) -> list[str]:
    # ``-m``, not the file path: as a script, devstack/ would come first on sys.path
    # and a module named like a standard one would shadow the standard library.
    return [sys.executable, "-m", "devstack.fast_emulator", "-H", "127.0.0.1", "-p", str(port)]


def emulator_env(base: dict[str, str] | None = None) -> dict[str, str]:
    base = dict(os.environ if base is None else base)
    return {
        **base,
        "MOTO_ALLOW_NONEXISTENT_REGION": "true",
        "PYTHONPATH": os.pathsep.join(filter(None, [_REPO_ROOT, base.get("PYTHONPATH")])),
    }


def start_emulator(port: int | None = None, quiet: bool = True) -> Emulator:
    port = port or free_port()
    proc = subprocess.Popen(
        emulator_command(port),
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.DEVNULL if quiet else None,
        env=emulator_env(),
        start_new_session=True,
    )
    emulator = FastEmulator(port=port, proc=proc)
    try:
        wait_http(f"{emulator.url}/moto-api/", proc=proc)
    except Exception:
        emulator.stop()
        raise
    return emulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    parser.add_argument(
        "--server",
        default=os.environ.get("FAST_EMULATOR_SERVER", "auto"),
        choices=["auto", "werkzeug", "granian"],
    )
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.server)


if __name__ == "__main__":
    main()
