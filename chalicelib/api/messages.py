"""Messages and groups (admin): submit a message event, read its delivery report, manage membership."""

from chalicelib.api import router
from chalicelib.api.routing import ApiRequest
from chalicelib.deps import services
from chalicelib.models.lifecycle import MessageChangeAccepted, MessageEdit
from chalicelib.models.message import MessageEvent
from chalicelib.models.sending import (
    DeliveryList,
    DeliveryQuery,
    GroupMembersChange,
    GroupMembersPage,
    MessageAccepted,
    PageQuery,
)
from chalicelib.services.auth import Access

APP = "/v1/apps/{appId}"


@router.operation(
    "POST",
    APP + "/messages",
    summary="Submit a message event for offline push",
    tag="Messages",
    access=Access.ADMIN,
    body=MessageEvent,
    response=MessageAccepted,
    status=202,
    errors=(400, 413),
)
def submit_message(req: ApiRequest) -> MessageAccepted:
    return MessageAccepted(message_id=services().messages.submit(req.params["appId"], req.body))


@router.operation(
    "GET",
    APP + "/messages/{messageId}/deliveries",
    summary="Delivery report: every recipient's outcome",
    tag="Messages",
    access=Access.ADMIN,
    query=DeliveryQuery,
    response=DeliveryList,
    errors=(404,),
)
def list_deliveries(req: ApiRequest) -> DeliveryList:
    return services().messages.deliveries_of(req.params["appId"], req.params["messageId"], req.query)


@router.operation(
    "PUT",
    APP + "/groups/{groupId}/members",
    summary="Add and remove group members",
    tag="Groups",
    access=Access.ADMIN,
    body=GroupMembersChange,
    status=204,
    errors=(400,),
)
def change_members(req: ApiRequest) -> None:
    services().messages.change_members(req.params["appId"], req.params["groupId"], req.body)


@router.operation(
    "GET",
    APP + "/groups/{groupId}/members",
    summary="List group members (paged)",
    tag="Groups",
    access=Access.ADMIN,
    query=PageQuery,
    response=GroupMembersPage,
)
def list_members(req: ApiRequest) -> GroupMembersPage:
    return services().messages.members(req.params["appId"], req.params["groupId"], req.query)


@router.operation(
    "POST",
    APP + "/messages/{messageId}/recall",
    summary="Recall a message: replace its notification on every phone it reached",
    tag="Messages",
    access=Access.ADMIN,
    response=MessageChangeAccepted,
    status=202,
    errors=(404, 409),
)
def recall_message(req: ApiRequest) -> MessageChangeAccepted:
    return services().messages.recall(req.params["appId"], req.params["messageId"])


@router.operation(
    "POST",
    APP + "/messages/{messageId}/edit",
    summary="Edit a message: replace its notification with the new content",
    tag="Messages",
    access=Access.ADMIN,
    body=MessageEdit,
    response=MessageChangeAccepted,
    status=202,
    errors=(400, 404, 409),
)
def edit_message(req: ApiRequest) -> MessageChangeAccepted:
    return services().messages.edit(req.params["appId"], req.params["messageId"], req.body)
