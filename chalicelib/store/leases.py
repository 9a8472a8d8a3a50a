"""A chunk attempt's lease (``K#<index>.<attempt>#L`` under the message, see ``deliveries.py``) and
the writes fenced by it.

The claim is one conditional update: it takes a queued attempt, or one whose holder's lease ran
out (``takeover``), and writes a fresh random fencing token (``holder``). The holder's later writes
land only while it still holds the attempt:

- its renewal, ``finish`` and ``release``: updates of the lease conditional on it naming the token;
- its pages: first the badges it gave (once per attempt, before anything is sent), then its
  checkpoints of outcomes (the hot write: one per burst of up to 20 answers): plain puts, each
  conditional on its own page number being free (``put_page``). A takeover reads the attempt's
  pages and first writes an empty *fence page* at the next number (``SendLedger.take_over``). The
  stale holder numbers its pages on from its last one, which the taker has read, so its next page
  is the fence's number (or it lands first, and the taker, refused, reads it and fences after it):
  it is refused, raises ``LeaseLost`` and lands nothing. A page costs 1 write unit (a put fenced
  by a transaction with a check of the lease costs 4).

Once another invocation has taken the attempt over, a stale holder's write fails (``LeaseLost``)
and lands nothing, so the new holder sees every outcome ever recorded and numbers its pages after
them. (Before sending on, a holder past half its lease by its own clock renews it, fenced: a stale
one stops there, see ``services/send/attempt.py``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.models.ledger import ChunkRef, Claim, ClaimOutcome, LeaseLost
from chalicelib.store import items

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_HOLDER = {"#s": "status", "#h": "holder"}
# A lease that may be taken: never claimed, given back, dead-lettered, or held past its lease.
_TAKEABLE = (
    "attribute_not_exists(pk) OR #s = :queued OR #s = :dead OR (#s = :claimed AND claimedAt < :expired)"
)
_CLAIMED = {":claimed": {"S": "claimed"}}


class LeaseWrites:
    """The lease section of ``DeliveryRepository`` (which provides the client, table and TTL)."""

    client: DynamoDBClient
    table: str
    ttl_s: int

    def claim(
        self, app_id: str, message_id: str, ref: ChunkRef, now_ms: int, lease_ms: int, holder: str
    ) -> ClaimOutcome:
        """Take the attempt for sending under the fencing token ``holder``. ``takeover`` = a previous
        claim's lease ran out (a crash or a stall) or was given back (it may have written pages);
        also the answer when this very claim was applied and its answer lost (a retried request
        finds its own token)."""
        lease = self._lease_key(app_id, message_id, ref)
        try:
            resp = self.client.update_item(
                TableName=self.table,
                Key=lease,
                UpdateExpression=(
                    "SET #s = :claimed, claimedAt = :now, #h = :h, #ttl = if_not_exists(#ttl, :ttl)"
                ),
                ConditionExpression=_TAKEABLE + " OR (#s = :claimed AND #h = :h)",
                ExpressionAttributeNames={**_HOLDER, "#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":claimed": {"S": "claimed"},
                    ":queued": {"S": "queued"},
                    ":dead": {"S": "dead"},
                    ":now": {"N": str(now_ms)},
                    ":h": {"S": holder},
                    ":expired": {"N": str(now_ms - lease_ms)},
                    ":ttl": {"N": str(now_ms // 1000 + self.ttl_s)},
                },
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            item = self.client.get_item(TableName=self.table, Key=lease, ConsistentRead=True).get("Item", {})
            return "done" if item.get("status", {}).get("S") == "done" else "busy"
        old = resp.get("Attributes", {})
        status = old.get("status", {}).get("S")
        # A claim given back (``release``) may have saved its badges page first: the next claim
        # reads the attempt's pages like a takeover and numbers its own after them.
        given_back = status == "queued" and "holder" in old
        return "takeover" if status in ("claimed", "dead") or given_back else "claimed"

    def mark_dead(
        self, app_id: str, message_id: str, ref: ChunkRef, now_ms: int, lease_ms: int, holder: str
    ) -> ClaimOutcome:
        """The queue's redrive dead-lettered this attempt: take its lease as ``dead`` under the fresh
        token ``holder`` (so a stale holder is fenced out), unless it is done or a live invocation
        holds it (``busy``); a redrive of it later is a takeover that keeps what was recorded.
        ``claimed``: the dead-letter consumer may record its outcomes (a page, as ``holder``)."""
        lease = self._lease_key(app_id, message_id, ref)
        try:
            self.client.update_item(
                TableName=self.table,
                Key=lease,
                UpdateExpression="SET #s = :dead, deadAt = :now, #h = :h, #ttl = if_not_exists(#ttl, :ttl)",
                ConditionExpression=_TAKEABLE,
                ExpressionAttributeNames={**_HOLDER, "#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":claimed": {"S": "claimed"},
                    ":queued": {"S": "queued"},
                    ":dead": {"S": "dead"},
                    ":now": {"N": str(now_ms)},
                    ":h": {"S": holder},
                    ":expired": {"N": str(now_ms - lease_ms)},
                    ":ttl": {"N": str(now_ms // 1000 + self.ttl_s)},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            item = self.client.get_item(TableName=self.table, Key=lease, ConsistentRead=True).get("Item", {})
            return "done" if item.get("status", {}).get("S") == "done" else "busy"
        return "claimed"

    def renew(self, claim: Claim, now_ms: int) -> None:
        """Restart the lease's clock, if ``claim`` still holds it (else ``LeaseLost``)."""
        now = {":now": {"N": str(now_ms)}, **_CLAIMED}
        self._update_held(claim, "SET claimedAt = :now", "#s = :claimed", now)

    def finish(self, claim: Claim) -> None:
        """The attempt is done (every outcome written), if ``claim`` still holds it."""
        self._update_held(claim, "SET #s = :done", None, {":done": {"S": "done"}})

    def release(self, claim: Claim) -> None:
        """Give the claim back after a failure before anything was sent, so a redelivery can retry."""
        queued = {":queued": {"S": "queued"}, **_CLAIMED}
        self._update_held(claim, "SET #s = :queued", "#s = :claimed", queued)

    def page_refused(self, claim: Claim, page: dict[str, Any], writer: str | None) -> LeaseLost | None:
        """A page's put (``page_item``) refused as written already: ``LeaseLost`` unless ``writer``,
        who wrote it, is ``claim`` itself (its own put, applied, then retried after a lost answer)."""
        return None if writer == claim.holder else _lost(claim)

    def page_writer_request(self, page: dict[str, Any]) -> dict[str, Any]:
        """A GetItem request (consistent) of who wrote the page a ``page_item`` request puts."""
        item = page["Item"]
        return {
            "TableName": self.table,
            "Key": {"pk": item["pk"], "sk": item["sk"]},
            "ConsistentRead": True,
            "ProjectionExpression": "h",
        }

    @staticmethod
    def page_writer(found: dict[str, Any]) -> str | None:
        """Who wrote a page, from the answer to ``page_writer_request``."""
        writer = found.get("Item", {}).get("h", {}).get("S")
        return str(writer) if writer else None

    def put_page(self, claim: Claim, page: dict[str, Any]) -> None:
        """A ``page_item`` request sent with boto3 (tools, tests, the dead-letter consumer):
        ``LeaseLost`` when another holder wrote that page number."""
        try:
            self.client.put_item(**page)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            found = self.client.get_item(**self.page_writer_request(page))
            lost = self.page_refused(claim, page, self.page_writer(dict(found)))
            if lost is not None:
                raise lost from None

    def _update_held(self, claim: Claim, update: str, condition: str | None, values: dict[str, Any]) -> None:
        held = "#h = :h" + (f" AND {condition}" if condition else "")
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._lease_key(claim.app_id, claim.message_id, claim.ref),
                UpdateExpression=update,
                ConditionExpression=held,
                ExpressionAttributeNames={k: v for k, v in _HOLDER.items() if k in update + held},
                ExpressionAttributeValues={**values, ":h": {"S": claim.holder}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise _lost(claim) from None
            raise

    @staticmethod
    def _lease_key(app_id: str, message_id: str, ref: ChunkRef) -> dict[str, Any]:
        return items.key(items.delivery_pk(app_id, message_id), f"{ref.sk}#L")


def _lost(claim: Claim) -> LeaseLost:
    return LeaseLost(
        f"{claim.ref.sk} of message {claim.message_id}: another invocation took the attempt over "
        "(this one stalled past its lease)"
    )
