"""POST /v1/apps (operator key)."""

from chalicelib.api import router
from chalicelib.api.routing import ApiRequest
from chalicelib.deps import services
from chalicelib.models.apps import AppCreate, AppCreated
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
