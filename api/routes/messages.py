"""Messages: send, read one (with its history), list a conversation; a bot's claim, its
stream (server-sent events) and its ack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from api.deps import BotSelf, Ctx, RequestId, Sender
from api.errors import invalid
from api.schemas.common import problem_responses
from api.schemas.messages import (
    AckAccepted,
    AckItems,
    ClaimedMessage,
    MessageClaimRequest,
    MessageClaimResponse,
    MessageCreate,
    MessageListQuery,
    MessagePublic,
    MessagesPublic,
    MessagesSent,
)
from domain.errors import NotFound
from domain.messages import Message, check_conversation

STREAM_KEEPALIVE_S = 15.0  # an idle stream says so this often (proxies close silent ones)
STREAM_BATCH = 10

router = APIRouter(prefix="/v1", tags=["messages"], responses=problem_responses(401, 403, 503))


@router.post("/messages", status_code=201, responses=problem_responses(404, 409, 413, 422))
def send_message(
    body: MessageCreate, principal: Sender, request_id: RequestId, ctx: Ctx, response: Response
) -> MessagesSent:
    spec = body.to_spec(ctx.settings.max_payload_bytes)
    committed = ctx.postman.send(spec, principal.cause(request_id))
    if len(committed.items) == 1:
        response.headers["Location"] = f"{router.prefix}/messages/{committed.items[0].id}"
    return MessagesSent(
        items=[MessagePublic.from_message(m) for m in committed.items],
        position=ctx.position_after(committed),
    )


@router.get("/messages/{message_id}", responses=problem_responses(404, 422))
def get_message(message_id: UUID, principal: Sender, ctx: Ctx) -> MessagePublic:
    message = ctx.hive.get(Message, message_id)
    bystander = principal.bot_id not in (None, message.bot_id, message.to_bot)
    if bystander and principal.actor != message.sender:  # a bot sees only its own messages
        raise NotFound(f"no message {message_id}", id=message_id)
    return MessagePublic.from_message(message, ctx.hive.history(message_id))


@router.get("/messages", responses=problem_responses(422))
def list_messages(
    query: Annotated[MessageListQuery, Query()], principal: Sender, ctx: Ctx
) -> MessagesPublic:
    """A conversation's messages in send order, or without one the latest messages,
    newest first (from the messages view); a bot's own key sees only that bot's messages,
    as ``GET /v1/messages/{id}`` does."""
    reads, bot, name = ctx.message_reads, principal.bot_id, query.conversation
    try:
        if name is None:
            rows, next_cursor = reads.latest(limit=query.limit, cursor=query.cursor, bot=bot)
        else:
            rows, next_cursor = reads.conversation(
                check_conversation(name), limit=query.limit, cursor=query.cursor, bot=bot
            )
    except ValueError as e:
        raise invalid(("query", "cursor"), "value_error", str(e)) from None
    return MessagesPublic(items=[MessagePublic.from_row(r) for r in rows], next_cursor=next_cursor)


@router.post("/bots/{bot_id}/messages/claim", responses=problem_responses(400, 422))
async def claim_messages(
    bot_id: UUID, body: MessageClaimRequest, principal: BotSelf, request_id: RequestId, ctx: Ctx
) -> MessageClaimResponse:
    wait_s = min(body.wait_s, ctx.settings.claim_max_wait_s)
    claimed = await ctx.messages.claim(
        bot_id, body.max_messages, wait_s, principal.cause(request_id)
    )
    return MessageClaimResponse(messages=[ClaimedMessage.from_message(m) for m in claimed])


@router.post("/bots/{bot_id}/messages/ack", responses=problem_responses(400, 404, 409, 422))
def ack_messages(
    bot_id: UUID, body: AckItems, principal: BotSelf, request_id: RequestId, ctx: Ctx
) -> AckAccepted:
    attempts = body.to_attempts(ctx.settings)
    committed = ctx.hive.messages.acknowledge(bot_id, attempts, principal.cause(request_id))
    return AckAccepted(messages=list(attempts), position=ctx.position_after(committed))


@router.get(
    "/bots/{bot_id}/messages/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **problem_responses(422)},
)
async def stream_messages(
    bot_id: UUID, principal: BotSelf, request_id: RequestId, ctx: Ctx, request: Request
) -> StreamingResponse:
    """Server-sent events for a bot that prefers them to the long-poll: each message handed
    out is one ``message`` event (the claim's item as ``data``); ack as after a claim."""
    cause = principal.cause(request_id)
    wait_s = min(STREAM_KEEPALIVE_S, ctx.settings.claim_max_wait_s)

    async def events() -> AsyncIterator[str]:
        while not ctx.messages.closing and not await request.is_disconnected():
            claimed = await ctx.messages.claim(bot_id, STREAM_BATCH, wait_s, cause)
            if not claimed:
                yield ": keep-alive\n\n"
            for m in claimed:
                data = ClaimedMessage.from_message(m).model_dump_json()
                yield f"id: {m.id}\nevent: message\ndata: {data}\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
