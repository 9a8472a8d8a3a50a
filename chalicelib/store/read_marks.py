"""Read sync's marks on the user's folded item (``U``, beside the badge): the open read window.

A read sets the badge and, when no window is open, opens one (``readHeld`` = its time, epoch ms):
only the read that opens a window queues a job, so a burst of reads costs one queue message and
one push. Reads inside the window add their conversation to ``readConvs`` (at most
``MAX_WINDOW_CONVERSATIONS``; the clearing push names them). The job claims the window by removing
both, conditional on ``readHeld`` still being the one it was queued for: a duplicate job, or a
window already closed by a state report (which removes both), sends nothing. A user stored before
the fold is folded first (``UserRepository.fold``).

Three small attributes (~60 bytes, ``readConvs`` for 2 s at most) keep the badge increments of the
send path at 1 write unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.models.push_config import AppState
from chalicelib.store import items
from chalicelib.store.user_codec import parse_state
from chalicelib.store.user_fold import FOLDED
from chalicelib.store.user_fold_ops import fold_user

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_WINDOW_CONVERSATIONS = 20  # conversations a clearing push names (the newest read last)


@dataclass(frozen=True, slots=True)
class ReadMark:
    """What a read left: the badge now, and the window it belongs to."""

    badge: int
    held_ms: int | None  # the open window's start (None: read sync off)


@dataclass(frozen=True, slots=True)
class ClaimedWindow:
    """A read window claimed by its job: the user's state and badge as the window closed, and the
    conversations read in it (oldest first)."""

    state: AppState
    conversations: tuple[dict[str, Any], ...]


@dataclass
class ReadMarks:
    client: DynamoDBClient
    table: str
    default_lease_s: int = 300

    def record_read(
        self, app_id: str, user_id: str, unread_count: int, at_ms: int, conversation: dict[str, Any] | None
    ) -> ReadMark:
        """Set the badge to ``unread_count`` and open a read window unless one is open: one UpdateItem
        (a second, badge only, when the window already names MAX_WINDOW_CONVERSATIONS conversations)."""
        values: dict[str, Any] = {":n": {"N": str(unread_count)}, ":now": {"N": str(at_ms)}}
        expr = "SET badge = :n, readHeld = if_not_exists(readHeld, :now)"
        condition = FOLDED
        if conversation is not None:
            expr += ", readConvs = list_append(if_not_exists(readConvs, :empty), :conv)"
            values[":empty"] = {"L": []}
            values[":conv"] = {"L": [items.serialize(conversation)]}
            values[":max"] = {"N": str(MAX_WINDOW_CONVERSATIONS)}
            condition += " AND (attribute_not_exists(readConvs) OR size(readConvs) < :max)"
        try:
            resp = self.client.update_item(
                TableName=self.table,
                Key=items.user_key(app_id, user_id),
                UpdateExpression=expr,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",  # UPDATED_NEW may leave an unchanged readHeld out
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            if not self._folded(app_id, user_id):
                fold_user(self.client, self.table, app_id, user_id)
                return self.record_read(app_id, user_id, unread_count, at_ms, conversation)
            return self.record_read(app_id, user_id, unread_count, at_ms, None)
        attrs = resp["Attributes"]
        return ReadMark(badge=int(attrs["badge"]["N"]), held_ms=int(attrs["readHeld"]["N"]))

    def set_badge(self, app_id: str, user_id: str, unread_count: int) -> int:
        """Only the stored badge (read sync off): one UpdateItem."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=items.user_key(app_id, user_id),
                UpdateExpression="SET badge = :n",
                ConditionExpression=FOLDED,
                ExpressionAttributeValues={":n": {"N": str(unread_count)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            fold_user(self.client, self.table, app_id, user_id)
            return self.set_badge(app_id, user_id, unread_count)
        return unread_count

    def _folded(self, app_id: str, user_id: str) -> bool:
        found = self.client.get_item(
            TableName=self.table,
            Key=items.user_key(app_id, user_id),
            ConsistentRead=True,
            ProjectionExpression="fold",
        ).get("Item")
        return found is not None and "fold" in found

    def claim_window(self, app_id: str, user_id: str, held_ms: int) -> ClaimedWindow | None:
        """Close the window opened at ``held_ms``; None when it is no longer open (claimed by a
        duplicate job, or closed by a state report)."""
        try:
            resp = self.client.update_item(
                TableName=self.table,
                Key=items.user_key(app_id, user_id),
                UpdateExpression="REMOVE readHeld, readConvs",
                ConditionExpression="readHeld = :held",
                ExpressionAttributeValues={":held": {"N": str(held_ms)}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        old = resp["Attributes"]
        conversations = items.from_item({"c": old["readConvs"]})["c"] if "readConvs" in old else []
        return ClaimedWindow(
            state=parse_state(old, {}, self.default_lease_s), conversations=tuple(conversations)
        )
