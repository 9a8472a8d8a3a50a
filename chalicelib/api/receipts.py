"""Delivery receipts (no token): the app's extension and tap handler report delivered and opened."""

from chalicelib.api import router
from chalicelib.api.routing import ApiRequest
from chalicelib.deps import services
from chalicelib.models.receipts import ReceiptBatch, ReceiptsAccepted
from chalicelib.services.auth import Access


@router.operation(
    "POST",
    "/v1/apps/{appId}/receipts",
    summary="Report notifications delivered or opened (each receipt's reference proves itself)",
    tag="Receipts",
    access=Access.PUBLIC,
    body=ReceiptBatch,
    response=ReceiptsAccepted,
    status=202,
    errors=(400, 413),
)
def post_receipts(req: ApiRequest) -> ReceiptsAccepted:
    return services().receipts.record(req.params["appId"], req.body)
