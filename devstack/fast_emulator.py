"""A faster embedded AWS emulator: moto's full server app with its hot spots removed.

Same interface as ``devstack.emulator`` (``start_emulator(port, quiet) -> Emulator``)
and the same thing underneath: moto's complete WSGI application
(``DomainDispatcherApplication(create_backend_app)``, every service, ``/moto-api/``),
served over HTTP on loopback by one child process, so all clients share its state.

What differs is only how much CPU each request costs.  ``apply_patches()`` removes
per-request work in moto that does not change any response:

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
* ``TransactWriteItems`` deep-copied the whole table once *per item* of the
  transaction (100 copies for 100 puts) for its rollback snapshot; only the last copy
  was ever kept, and all copies are taken before any write, so one copy per table is
  the same snapshot.
* The per-request access log line of werkzeug's dev server is not formatted/written
  (it went to /dev/null with ``quiet=True`` anyway).

Serve by hand with ``python -m devstack.fast_emulator -H 127.0.0.1 -p PORT [--server granian|werkzeug]``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import subprocess
import sys
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
    """Take the rollback snapshot of each table once per transaction, not once per item.

    The fix is applied to moto's own source text of the method, so the method stays
    moto's code; if that text changed in another moto version, nothing is patched.
    """
    import inspect
    import textwrap

    import moto.dynamodb.models as models

    original = models.DynamoDBBackend.transact_write_items
    if getattr(original, "_fast_emulator", False):
        return
    old = "if table_name and table_name in self.tables:"
    new = "if table_name and table_name in self.tables and table_name not in original_table_state:"
    try:
        source = textwrap.dedent(inspect.getsource(original))
    except (OSError, TypeError):
        return
    if source.count(old) != 1:
        return
    namespace: dict[str, Any] = {}
    exec(  # noqa: S102 (moto's own method source with one condition changed)
        compile(source.replace(old, new), inspect.getsourcefile(original) or "<moto>", "exec"),
        models.__dict__,
        namespace,
    )
    patched = namespace["transact_write_items"]
    patched.__qualname__ = original.__qualname__
    patched._fast_emulator = True
    models.DynamoDBBackend.transact_write_items = patched  # type: ignore[method-assign]


def apply_patches() -> None:
    global _PATCHED
    if _PATCHED:
        return
    _patch_module_listing()
    _patch_method_names()
    _patch_dynamodb_serializer()
    _patch_transact_write_items()
    _PATCHED = True


def make_app() -> Any:
    """moto's full server application (all services), with the patches applied."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    apply_patches()
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # type: ignore[attr-defined]  # as moto.server does
    return app


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
            # moto's handlers block (SQS long polling holds a thread for up to
            # WaitTimeSeconds), so allow plenty of concurrent requests.
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


def start_emulator(port: int | None = None, quiet: bool = True) -> Emulator:
    port = port or free_port()
    proc = subprocess.Popen(
        # ``-m``, not the file path: as a script, devstack/ would come first on sys.path
        # and a module named like a standard one would shadow the standard library.
        [sys.executable, "-m", "devstack.fast_emulator", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.DEVNULL if quiet else None,
        env={
            **os.environ,
            "MOTO_ALLOW_NONEXISTENT_REGION": "true",
            "PYTHONPATH": os.pathsep.join(filter(None, [_REPO_ROOT, os.environ.get("PYTHONPATH")])),
        },
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
