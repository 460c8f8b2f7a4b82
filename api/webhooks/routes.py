"""Webhook endpoints (admins, and API keys with `webhooks:manage`): subscribe, rotate, test, and read the log."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from api.auth.deps import allow
from api.auth.models import Role
from api.auth.principals import Principal
from api.core.db import SessionDep
from api.core.errors import problems
from api.core.etags import IfMatchDep, set_etag
from api.core.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from api.settings import Settings
from api.webhooks import events, service
from api.webhooks.models import EventStatus
from api.webhooks.schemas import (
    DeliveryRead,
    EventType,
    Queued,
    RotateSecret,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookEventRead,
    WebhookRead,
    WebhookUpdate,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=problems(401, 403))
ManagerDep = Annotated[Principal, Depends(allow(Role.admin, scope="webhooks:manage"))]


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(app_settings)]


@router.get("/event-types", name="event-types", summary="The event types an endpoint can subscribe to")
async def event_types(_principal: ManagerDep) -> list[EventType]:
    return [EventType(type=t, description=d) for t, d in events.CATALOGUE.items()]


@router.get("", name="list", summary="Webhook endpoints", responses=problems(400, 422))
async def list_webhooks(
    principal: ManagerDep, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[WebhookRead]:
    found, next_cursor = await service.list_endpoints(session=session, principal=principal, limit=limit, cursor=cursor)
    return Page(items=[service.present(e) for e in found], next_cursor=next_cursor)


@router.post(
    "",
    name="create",
    summary="Subscribe an endpoint to events; its signing secret is shown once",
    status_code=201,
    responses=problems(409, 422),
)
async def create_webhook(
    data: WebhookCreate, principal: ManagerDep, session: SessionDep, settings: SettingsDep, response: Response
) -> WebhookCreated:
    endpoint = await service.create_endpoint(session=session, principal=principal, settings=settings, data=data)
    response.headers["Location"] = f"/api/v1/webhooks/{endpoint.id}"
    set_etag(response, endpoint.version)
    return WebhookCreated(**service.present(endpoint).model_dump(), secret=endpoint.secret)


@router.get("/{webhook_id}", name="get", summary="One webhook endpoint", responses=problems(404))
async def get_webhook(
    webhook_id: uuid.UUID, principal: ManagerDep, session: SessionDep, response: Response
) -> WebhookRead:
    endpoint = await service.get_endpoint(session, principal, webhook_id)
    set_etag(response, endpoint.version)
    return service.present(endpoint)


@router.patch(
    "/{webhook_id}",
    name="update",
    summary="Change an endpoint's URL or filters, pause it, or turn it back on",
    responses=problems(404, 412, 422),
)
async def update_webhook(
    webhook_id: uuid.UUID,
    data: WebhookUpdate,
    principal: ManagerDep,
    session: SessionDep,
    settings: SettingsDep,
    if_match: IfMatchDep,
    response: Response,
) -> WebhookRead:
    endpoint = await service.update_endpoint(
        session=session,
        principal=principal,
        settings=settings,
        endpoint_id=webhook_id,
        data=data,
        expected_version=if_match,
    )
    set_etag(response, endpoint.version)
    return service.present(endpoint)


@router.delete(
    "/{webhook_id}",
    name="delete",
    summary="Delete an endpoint; what it had not received yet is dropped",
    status_code=204,
    responses=problems(404, 412),
)
async def delete_webhook(
    webhook_id: uuid.UUID, principal: ManagerDep, session: SessionDep, if_match: IfMatchDep
) -> None:
    await service.delete_endpoint(
        session=session, principal=principal, endpoint_id=webhook_id, expected_version=if_match
    )


@router.post(
    "/{webhook_id}/rotate-secret",
    name="rotate-secret",
    summary="Replace the signing secret, signing with both while the receiver switches",
    responses=problems(404, 422),
)
async def rotate_secret(
    webhook_id: uuid.UUID, data: RotateSecret, principal: ManagerDep, session: SessionDep, response: Response
) -> SecretRotated:
    endpoint, secret = await service.rotate_secret(
        session=session, principal=principal, endpoint_id=webhook_id, overlap_hours=data.overlap_hours
    )
    set_etag(response, endpoint.version)
    return SecretRotated(secret=secret, previous_secret_until=endpoint.previous_secret_until)


@router.post(
    "/{webhook_id}/ping",
    name="ping",
    summary="Send a test event (`webhook.ping`) to the endpoint now",
    status_code=202,
    responses=problems(404, 409),
)
async def ping_webhook(webhook_id: uuid.UUID, principal: ManagerDep, session: SessionDep) -> Queued:
    event = await service.ping(session=session, principal=principal, endpoint_id=webhook_id)
    return Queued(event_id=event.id)


@router.get(
    "/{webhook_id}/events",
    name="events",
    summary="The messages for an endpoint, newest first, with their state",
    responses=problems(400, 404, 422),
)
async def list_events(
    webhook_id: uuid.UUID,
    principal: ManagerDep,
    session: SessionDep,
    status: Annotated[EventStatus | None, Query(description="Only messages in this state.")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[WebhookEventRead]:
    found, next_cursor = await service.list_events(
        session=session, principal=principal, endpoint_id=webhook_id, status=status, limit=limit, cursor=cursor
    )
    return Page(items=[service.present_event(e) for e in found], next_cursor=next_cursor)


@router.get(
    "/{webhook_id}/deliveries",
    name="deliveries",
    summary="The delivery log: every attempt, newest first, with status, latency and the answer's start",
    responses=problems(400, 404, 422),
)
async def list_deliveries(
    webhook_id: uuid.UUID,
    principal: ManagerDep,
    session: SessionDep,
    event_id: Annotated[uuid.UUID | None, Query(description="Only the attempts for this message.")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[DeliveryRead]:
    found, next_cursor = await service.list_deliveries(
        session=session, principal=principal, endpoint_id=webhook_id, event_id=event_id, limit=limit, cursor=cursor
    )
    return Page(items=[DeliveryRead.model_validate(d) for d in found], next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/events/{event_id}/redeliver",
    name="redeliver",
    summary="Send a message again now, with the same id and body",
    status_code=202,
    responses=problems(404, 409),
)
async def redeliver(
    webhook_id: uuid.UUID, event_id: uuid.UUID, principal: ManagerDep, session: SessionDep, settings: SettingsDep
) -> Queued:
    event = await service.redeliver(
        session=session, principal=principal, settings=settings, endpoint_id=webhook_id, event_id=event_id
    )
    return Queued(event_id=event.id)
