"""Operator insight (admin token or operator key): the app's recent messages and daily statistics."""

from chalicelib.api import router
from chalicelib.api.routing import ApiRequest
from chalicelib.deps import services
from chalicelib.models.stats import MessageList, MessageListQuery, StatsPage, StatsQuery
from chalicelib.services.auth import Access

APP = "/v1/apps/{appId}"


@router.operation(
    "GET",
    APP + "/messages",
    summary="Recent messages, newest first (all, or those one user received), with their summaries",
    tag="Insight",
    access=Access.APP_ADMIN,
    query=MessageListQuery,
    response=MessageList,
    errors=(400,),
)
def list_messages(req: ApiRequest) -> MessageList:
    return services().message_list.list(req.params["appId"], req.query)


@router.operation(
    "GET",
    APP + "/stats",
    summary="Daily statistics per UTC day: messages, sent, skipped and failed by reason, delivered, opened",
    tag="Insight",
    access=Access.APP_ADMIN,
    query=StatsQuery,
    response=StatsPage,
    errors=(400,),
)
def daily_stats(req: ApiRequest) -> StatsPage:
    return services().stats.days(req.params["appId"], req.query)
