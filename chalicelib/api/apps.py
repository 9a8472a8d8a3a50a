"""Apps (operator key): create and list them, mint short-lived admin tokens for the console, rotate
an app's token-signing key; the app's settings (an admin token or the operator key)."""

from chalicelib.api import router
from chalicelib.api.routing import ApiRequest
from chalicelib.deps import services
from chalicelib.models.apps import (
    AppCreate,
    AppCreated,
    AppList,
    KeyRotated,
    KeyRotation,
    TokenIssued,
    TokenRequest,
)
from chalicelib.models.settings import AppSettings, AppSettingsChanged, AppSettingsPatch
from chalicelib.services.auth import Access


@router.operation(
    "POST",
    "/v1/apps",
    summary="Create an app",
    tag="Apps",
    access=Access.OPERATOR,
    body=AppCreate,
    response=AppCreated,
    status=201,
)
def create_app(req: ApiRequest) -> AppCreated:
    return services().apps.create(req.body)


@router.operation(
    "GET",
    "/v1/apps",
    summary="List the apps",
    tag="Apps",
    access=Access.OPERATOR,
    response=AppList,
)
def list_apps(req: ApiRequest) -> AppList:
    return services().apps.list_all()


@router.operation(
    "POST",
    "/v1/apps/{appId}/tokens",
    summary="Mint a short-lived admin token (the operator console's)",
    tag="Apps",
    access=Access.OPERATOR,
    body=TokenRequest,
    response=TokenIssued,
    status=201,
    errors=(404,),
)
def issue_token(req: ApiRequest) -> TokenIssued:
    return services().apps.console_token(req.params["appId"], req.body)


@router.operation(
    "POST",
    "/v1/apps/{appId}/secret-key/rotate",
    summary="Rotate the app's token-signing key (the previous one works for a grace period)",
    tag="Apps",
    access=Access.OPERATOR,
    body=KeyRotation,
    body_required=False,
    response=KeyRotated,
    errors=(404,),
)
def rotate_secret_key(req: ApiRequest) -> KeyRotated:
    return services().apps.rotate_key(req.params["appId"], req.body)


@router.operation(
    "GET",
    "/v1/apps/{appId}/settings",
    summary="Read the app's settings",
    tag="Apps",
    access=Access.APP_ADMIN,
    response=AppSettings,
    errors=(404,),
)
def get_settings(req: ApiRequest) -> AppSettings:
    return services().settings_service.get(req.params["appId"])


@router.operation(
    "PATCH",
    "/v1/apps/{appId}/settings",
    summary="Change some of the app's settings",
    tag="Apps",
    access=Access.APP_ADMIN,
    body=AppSettingsPatch,
    response=AppSettingsChanged,
    errors=(404,),
)
def patch_settings(req: ApiRequest) -> AppSettingsChanged:
    svc = services()
    app_id = req.params["appId"]
    settings = svc.settings_service.patch(app_id, req.body)
    secret = svc.webhooks.after_settings_change(app_id, req.body, settings)
    return AppSettingsChanged(**settings.model_dump(), webhook_secret=secret)
