"""A bot's messages: sending from a handler, and receiving through ``on_message``.

``Messenger.send`` is what a handler calls to message another bot (by id), any bot with a
capability, or every bot of a pool; it sends as this bot. ``MessagePoller`` long-polls the
bot's messages and calls ``on_message(message, messenger)`` for each, in the order the
hive handed them out (a conversation's in send order), then acknowledges the ones it
handled, naming their delivery attempt. One that raises is not acknowledged: the hive
hands it out again once its visibility timeout passes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from runtime.bot import JSON
from runtime.bot.client import (
    BotLost,
    HiveClient,
    HiveRejected,
    ReceivedMessage,
    Registration,
    Unavailable,
)
from runtime.bot.handlers import HandlerError

log = logging.getLogger(__name__)

MESSAGE_BATCH = 10


class Messenger:
    def __init__(self, client: HiveClient, me: Callable[[], Registration | None]) -> None:
        self._client = client
        self._me = me

    def send(
        self,
        *,
        body: JSON,
        to_bot: str | None = None,
        to_capability: str | None = None,
        to_pool: str | None = None,
        conversation: str | None = None,
        task_id: str | None = None,
        ttl_s: int | None = None,
    ) -> list[str]:
        """Returns the ids of the messages sent (one per live bot of a pool)."""
        to = {"to_bot": to_bot, "to_capability": to_capability, "to_pool": to_pool}
        address = {k: v for k, v in to.items() if v is not None}
        if len(address) != 1:
            raise ValueError("send to exactly one of to_bot, to_capability, to_pool")
        me = self._me()
        if me is None:
            raise RuntimeError("the bot is not registered")
        return self._client.send_message(
            body, address, conversation=conversation, task_id=task_id, ttl_s=ttl_s, bot=me
        )


OnMessage = Callable[[ReceivedMessage, Messenger], None]


@dataclass
class MessagePoller:
    client: HiveClient
    messenger: Messenger
    on_message: OnMessage
    me: Callable[[], Registration | None]
    stopping: threading.Event
    on_lost: Callable[[Registration], None]
    wait_s: float = 10.0
    retry_pause_s: float = 1.0

    def run(self) -> None:
        while not self.stopping.is_set():
            registration = self.me()
            if registration is None:
                self.stopping.wait(self.retry_pause_s)
                continue
            try:
                messages = self.client.claim_messages(MESSAGE_BATCH, self.wait_s, bot=registration)
                handled = [m for m in messages if self._handle(m)]
                if handled:
                    self.client.ack_messages(handled, bot=registration)
            except BotLost:
                self.on_lost(registration)
            except (Unavailable, HiveRejected) as e:
                if not self.stopping.is_set():
                    log.warning("messages failed", extra={"action": "messages", "reason": str(e)})
                    self.stopping.wait(self.retry_pause_s)

    def _handle(self, message: ReceivedMessage) -> bool:
        try:
            self.on_message(message, self.messenger)
        except Exception as e:  # the handler's failure: leave it for redelivery, go on
            log.warning(
                "on_message failed; the message will be redelivered",
                extra={"action": "message.failed", "message_id": message.id, "error": repr(e)},
            )
            return False
        log.info(
            "message handled",
            extra={"action": "message.handled", "message_id": message.id, "sender": message.sender},
        )
        return True


def relay(messenger: Messenger, payload: JSON) -> JSON:
    """The ``message`` task: send its payload's ``body`` to its ``to_bot``,
    ``to_capability`` or ``to_pool`` (with its ``conversation``, if any) as this bot."""
    if not isinstance(payload, dict) or "body" not in payload:
        raise HandlerError("payload must be a JSON object with 'body' and one address")
    fields = ("to_bot", "to_capability", "to_pool", "conversation")
    given: dict[str, str] = {k: v for k in fields if isinstance(v := payload.get(k), str)}
    try:
        return {"sent": list(messenger.send(body=payload["body"], **given))}  # type: ignore[arg-type]
    except ValueError as e:
        raise HandlerError(str(e)) from None
    except HiveRejected as e:
        raise HandlerError(f"the hive refused the message: {e}") from None


def log_message(message: ReceivedMessage, _: Messenger) -> None:
    """The CLI bot's ``on_message``: note it (never its body) and acknowledge it."""
    log.info(
        "message received",
        extra={
            "action": "message.received",
            "message_id": message.id,
            "sender": message.sender,
            "conversation": message.conversation,
            "attempt": message.attempt,
        },
    )
