"""Receipt references (pure): the ``r`` every notification carries, and reading one back.

``r`` is 40 base64url characters of 30 bytes: a version, the UTC day it was issued, 8 bytes of
SHA-256 of the message ID (any length of ID fits), where the device sits in the message's ledger
(chunk, attempt, recipient index) with the first 4 bytes of its token, and 10 bytes of
HMAC-SHA256 over the app ID and all of that, keyed by the app's receipt key (Secrets Manager). The
receipts API needs no token: it checks the HMAC, and the location finds the delivery without
reading anything. A forged reference, or one of another app, fails the HMAC.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass

VERSION = 1
_BODY = struct.Struct(">BH8sHBH4s")  # version, day, message digest, chunk, attempt, index, token prefix
MAC_BYTES = 10
REF_BYTES = _BODY.size + MAC_BYTES  # 30
REF_CHARS = 40
RECEIPT_GROUP = 32  # recipients of a chunk attempt whose receipts share one item (~1 KB when all opened)


def message_digest(message_id: str) -> bytes:
    return hashlib.sha256(message_id.encode()).digest()[:8]


@dataclass(frozen=True, slots=True)
class ReceiptRef:
    day: int  # days since the epoch (UTC) when the notification was sent
    digest: bytes  # message_digest(message ID)
    chunk: int
    attempt: int
    index: int  # the recipient's position in the chunk attempt
    token_prefix: bytes  # the device token's first 4 bytes

    @property
    def group(self) -> int:
        return self.index // RECEIPT_GROUP

    @property
    def device_key(self) -> str:
        """The device's attribute suffix in its receipt item (its item names the chunk attempt and
        group): short, as writes are billed by item size. Two bytes of token tell a user's devices
        apart."""
        return f"{self.index % RECEIPT_GROUP:x}{self.token_prefix[:2].hex()}"


def issue(
    key: bytes, app_id: str, message_id: str, day: int, chunk: int, attempt: int, index: int, token: str
) -> str:
    """The reference of one notification (cheap: one HMAC-SHA256 over ~40 bytes)."""
    body = _BODY.pack(
        VERSION,
        day & 0xFFFF,
        message_digest(message_id),
        chunk & 0xFFFF,
        attempt & 0xFF,
        index & 0xFFFF,
        bytes.fromhex(token[:8].ljust(8, "0")),
    )
    return base64.urlsafe_b64encode(body + _mac(key, app_id, body)).decode()


def read(key: bytes, app_id: str, ref: str) -> ReceiptRef | None:
    """The reference's content if this app issued it, else None (forged, foreign or malformed)."""
    if len(ref) != REF_CHARS:
        return None
    try:
        raw = base64.urlsafe_b64decode(ref.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    if len(raw) != REF_BYTES or raw[0] != VERSION:
        return None
    body, mac = raw[: _BODY.size], raw[_BODY.size :]
    if not hmac.compare_digest(mac, _mac(key, app_id, body)):
        return None
    _, day, digest, chunk, attempt, index, prefix = _BODY.unpack(body)
    return ReceiptRef(day, digest, chunk, attempt, index, prefix)


def _mac(key: bytes, app_id: str, body: bytes) -> bytes:
    return hmac.new(key, app_id.encode() + b"\x00" + body, hashlib.sha256).digest()[:MAC_BYTES]
