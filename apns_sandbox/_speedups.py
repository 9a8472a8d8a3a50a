"""Keeps pure-Python HTTP/2 bookkeeping off the request path's critical cost.

Clients send the same long header values on every request (`authorization: bearer <JWT>`, which
h2-based clients such as aioapns mark never-indexed, so it arrives Huffman-coded each time, and a
64-hex-char `:path`). hpack's pure-Python Huffman decoder (~60 us per JWT) and h2's byte-by-byte
header character check (~35 us per request) are pure functions of their input, so bounded memos
make repeats free while still rejecting what h2 rejects. Applied once, in the sandbox process only.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

import h2.utilities
import hpack.hpack

_MAX_ENTRIES = 8192
_MAX_INPUT = 2048
_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    _memoize_huffman()
    _memoize_header_checks()
    _applied = True


def _memoize_huffman() -> None:
    original = hpack.hpack.decode_huffman
    memo: dict[bytes, bytes] = {}

    def decode_huffman(huffman_string: bytes) -> bytes:
        if len(huffman_string) > _MAX_INPUT:
            return original(huffman_string)
        key = bytes(huffman_string)
        result = memo.get(key)
        if result is None:
            result = original(key)
            if len(memo) >= _MAX_ENTRIES:
                memo.clear()
            memo[key] = result
        return result

    hpack.hpack.decode_huffman = decode_huffman  # type: ignore[assignment]


def _memoize_header_checks() -> None:
    original = h2.utilities._reject_illegal_characters
    valid: set[Any] = set()

    def reject_illegal_characters(headers: Iterable[Any], flags: Any) -> Generator[Any, None, None]:
        for header in headers:
            if header not in valid:
                for _ in original((header,), flags):  # raises ProtocolError like h2 does
                    pass
                if len(valid) >= _MAX_ENTRIES:
                    valid.clear()
                valid.add(header)
            yield header

    h2.utilities._reject_illegal_characters = reject_illegal_characters  # type: ignore[assignment]
