"""Push credentials (admin): upload .p12 / .p8, list, get, delete."""

from chalicelib.api import router
from chalicelib.api.routing import ApiRequest
from chalicelib.deps import services
from chalicelib.models.credentials import Credential, CredentialList, CredentialUpload
from chalicelib.services.auth import Access

PATH = "/v1/apps/{appId}/credentials"


@router.operation(
    "POST",
    PATH,
    summary="Upload a .p12 certificate or a .p8 key",
    tag="Credentials",
    access=Access.ADMIN,
    body=CredentialUpload,
    response=Credential,
    status=201,
    errors=(400, 404, 409, 413),
)
def upload_credential(req: ApiRequest) -> Credential:
    return services().credentials.upload(req.params["appId"], req.body)


@router.operation(
    "GET",
    PATH,
    summary="List credentials",
    tag="Credentials",
    access=Access.ADMIN,
    response=CredentialList,
    errors=(404,),
)
def list_credentials(req: ApiRequest) -> CredentialList:
    return CredentialList(items=services().credentials.list_all(req.params["appId"]))


@router.operation(
    "GET",
    PATH + "/{certificateId}",
    summary="Get a credential",
    tag="Credentials",
    access=Access.ADMIN,
    response=Credential,
    errors=(404,),
)
def get_credential(req: ApiRequest) -> Credential:
    return services().credentials.get(req.params["appId"], req.params["certificateId"])


@router.operation(
    "DELETE",
    PATH + "/{certificateId}",
    summary="Delete a credential and its secret",
    tag="Credentials",
    access=Access.ADMIN,
    status=204,
    errors=(404,),
)
def delete_credential(req: ApiRequest) -> None:
    services().credentials.delete(req.params["appId"], req.params["certificateId"])
