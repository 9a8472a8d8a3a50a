"""The app's outcome webhook (admin token or operator key): rotate its secret, send a test event,
see the last deliveries. The webhook itself is set with PATCH .../settings."""

from chalicelib.api import router
from chalicelib.api.routing import ApiRequest
from chalicelib.deps import services
from chalicelib.models.webhooks import WebhookDeliveryList, WebhookSecretIssued, WebhookTestResult
from chalicelib.services.auth import Access

SETTINGS = "/v1/apps/{appId}/settings"


@router.operation(
    "POST",
    SETTINGS + "/webhook-secret/rotate",
    summary="Rotate the webhook's signing secret (requests are signed with the new one from now on)",
    tag="Apps",
    access=Access.APP_ADMIN,
    response=WebhookSecretIssued,
    errors=(404, 409),
)
def rotate_webhook_secret(req: ApiRequest) -> WebhookSecretIssued:
    svc = services()
    app_id = req.params["appId"]
    return svc.webhooks.rotate(app_id, svc.settings_service.get(app_id))


@router.operation(
    "POST",
    SETTINGS + "/webhook/test",
    summary="POST a signed webhook.test event to the app's webhook now, and say how it went",
    tag="Apps",
    access=Access.APP_ADMIN,
    response=WebhookTestResult,
    errors=(404, 409),
)
def test_webhook(req: ApiRequest) -> WebhookTestResult:
    svc = services()
    app_id = req.params["appId"]
    return svc.webhooks.send_test(app_id, svc.settings_service.get(app_id))


@router.operation(
    "GET",
    SETTINGS + "/webhook/deliveries",
    summary="The last webhook requests (newest first, at most 20) and how each went",
    tag="Apps",
    access=Access.APP_ADMIN,
    response=WebhookDeliveryList,
    errors=(404,),
)
def list_webhook_deliveries(req: ApiRequest) -> WebhookDeliveryList:
    svc = services()
    app_id = req.params["appId"]
    svc.settings_service.get(app_id)  # 404 for an unknown app
    return svc.webhooks.deliveries(app_id)
