"""Per-user resources (a user token for that user, or an admin token): devices, push config, app state."""

from typing import Any

from chalicelib.api import router
from chalicelib.api.routing import ApiRequest
from chalicelib.deps import services
from chalicelib.models.devices import Device, DeviceList, DeviceRegistration
from chalicelib.models.push_config import (
    AppState,
    AppStateIn,
    ConversationSetting,
    ConversationSettingIn,
    ConversationSettingList,
    PresenceBulk,
    PresenceResult,
    PushConfig,
    PushConfigPatch,
)
from chalicelib.models.read_sync import ReadAccepted, ReadIn
from chalicelib.services.auth import Access

USER = "/v1/apps/{appId}/users/{userId}"
CONFIG = USER + "/push-config"
CONVERSATION = CONFIG + "/conversations/{kind}/{conversationId}"


@router.operation(
    "PUT",
    USER + "/devices/{deviceToken}",
    summary="Register a device token (setAPNS)",
    tag="Devices",
    access=Access.USER,
    body=DeviceRegistration,
    response=Device,
    errors=(400, 404, 409),
)
def register_device(req: ApiRequest) -> Device:
    p = req.params
    return services().users.register_device(p["appId"], p["userId"], p["deviceToken"], req.body)


@router.operation(
    "GET",
    USER + "/devices",
    summary="List a user's devices",
    tag="Devices",
    access=Access.USER,
    response=DeviceList,
)
def list_devices(req: ApiRequest) -> DeviceList:
    return DeviceList(items=services().users.devices(req.params["appId"], req.params["userId"]))


@router.operation(
    "DELETE",
    USER + "/devices/{deviceToken}",
    summary="Log out one device",
    tag="Devices",
    access=Access.USER,
    status=204,
    errors=(400, 404),
)
def logout_device(req: ApiRequest) -> None:
    p = req.params
    services().users.logout_device(p["appId"], p["userId"], p["deviceToken"])


@router.operation(
    "DELETE",
    USER + "/devices",
    summary="Log out everywhere (kicked offline)",
    tag="Devices",
    access=Access.USER,
    status=204,
)
def logout_everywhere(req: ApiRequest) -> None:
    services().users.logout_everywhere(req.params["appId"], req.params["userId"])


@router.operation(
    "GET",
    CONFIG,
    summary="Read push configuration",
    tag="Push configuration",
    access=Access.USER,
    response=PushConfig,
)
def get_push_config(req: ApiRequest) -> PushConfig:
    return services().users.config(req.params["appId"], req.params["userId"])


@router.operation(
    "PATCH",
    CONFIG,
    summary="Change push configuration (any subset)",
    tag="Push configuration",
    access=Access.USER,
    body=PushConfigPatch,
    response=PushConfig,
    errors=(400,),
)
def patch_push_config(req: ApiRequest) -> PushConfig:
    return services().users.patch_config(req.params["appId"], req.params["userId"], req.body)


def _mute_route(kind: str, param: str, muted: bool) -> Any:
    method = "PUT" if muted else "DELETE"
    path = f"{CONFIG}/muted-{kind}/{{{param}}}"

    def handler(req: ApiRequest) -> PushConfig:
        p = req.params
        return services().users.mute(p["appId"], p["userId"], kind, p[param], muted)

    handler.__name__ = f"{'mute' if muted else 'unmute'}_{kind}"
    verb = "Mute" if muted else "Unmute"
    return router.operation(
        method,
        path,
        summary=f"{verb} {kind[:-1]} notifications",
        tag="Push configuration",
        access=Access.USER,
        response=PushConfig,
    )(handler)


for _kind, _param in (("groups", "groupId"), ("users", "otherUserId")):
    for _muted in (True, False):
        _mute_route(_kind, _param, _muted)


@router.operation(
    "GET",
    USER + "/app-state",
    summary="Read app state and badge",
    tag="App state",
    access=Access.USER,
    response=AppState,
)
def get_app_state(req: ApiRequest) -> dict[str, Any]:
    return services().users.app_state(req.params["appId"], req.params["userId"])


@router.operation(
    "GET",
    CONFIG + "/conversations",
    summary="List the conversation settings in force",
    tag="Push configuration",
    access=Access.USER,
    response=ConversationSettingList,
)
def list_conversation_settings(req: ApiRequest) -> ConversationSettingList:
    return services().users.conversation_settings(req.params["appId"], req.params["userId"])


@router.operation(
    "GET",
    CONVERSATION,
    summary="Read one conversation's setting (all when none is in force)",
    tag="Push configuration",
    access=Access.USER,
    response=ConversationSetting,
    errors=(400,),
)
def get_conversation_setting(req: ApiRequest) -> ConversationSetting:
    p = req.params
    return services().users.conversation_setting(p["appId"], p["userId"], p["kind"], p["conversationId"])


@router.operation(
    "PUT",
    CONVERSATION,
    summary="Set a conversation to all / mentionOnly / none, optionally until a time",
    tag="Push configuration",
    access=Access.USER,
    body=ConversationSettingIn,
    response=ConversationSetting,
    errors=(400,),
)
def put_conversation_setting(req: ApiRequest) -> ConversationSetting:
    p = req.params
    return services().users.set_conversation(
        p["appId"], p["userId"], p["kind"], p["conversationId"], req.body
    )


@router.operation(
    "DELETE",
    CONVERSATION,
    summary="Clear a conversation's setting (back to all)",
    tag="Push configuration",
    access=Access.USER,
    status=204,
    errors=(400,),
)
def delete_conversation_setting(req: ApiRequest) -> None:
    p = req.params
    services().users.delete_conversation(p["appId"], p["userId"], p["kind"], p["conversationId"])


@router.operation(
    "PUT",
    USER + "/app-state",
    summary="Report background (with unread count) or foreground (a lease)",
    tag="App state",
    access=Access.USER,
    body=AppStateIn,
    response=AppState,
    errors=(400,),
)
def put_app_state(req: ApiRequest) -> dict[str, Any]:
    return services().users.set_app_state(req.params["appId"], req.params["userId"], req.body)


@router.operation(
    "POST",
    USER + "/read",
    summary="The user read on another device: set the badge, sync the phones (read sync)",
    tag="App state",
    access=Access.USER,
    body=ReadIn,
    response=ReadAccepted,
    status=202,
    errors=(400,),
)
def post_read(req: ApiRequest) -> ReadAccepted:
    return services().read_sync.read(req.params["appId"], req.params["userId"], req.body)


@router.operation(
    "PUT",
    "/v1/apps/{appId}/presence",
    summary="Report many users' app state at once (the IM server)",
    tag="App state",
    access=Access.ADMIN,
    body=PresenceBulk,
    response=PresenceResult,
    errors=(400,),
)
def put_presence(req: ApiRequest) -> PresenceResult:
    return services().users.set_presence(req.params["appId"], req.body)
