"""The bot's messaging: the poller hands messages to ``on_message`` and acks what it handled;
a peer hive is faked behind the client's ``Transport`` (a port we own)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from runtime.bot.client import HiveClient, ReceivedMessage, Registration
from runtime.bot.handlers import HandlerError
from runtime.bot.messenger import MessagePoller, Messenger, relay
from runtime.bot.transport import Response
from tests.unit.fake_transport import FakeTransport, Request, answer
from tests.waiting import wait_for

ME = Registration("b1", "tok", 1.0, 5.0)


class FakeHive:
    """Hands out two messages once, records acks and sends."""

    def __init__(self) -> None:
        self.queue = [
            {"id": "m1", "sender": "bot:x", "conversation": "c", "seq": 1, "task_id": None,
             "body": {"ok": True}, "attempt": 1},
            {"id": "m2", "sender": "client", "conversation": None, "seq": 0, "task_id": None,
             "body": {"boom": True}, "attempt": 3},
        ]  # fmt: skip
        self.acks: list[Any] = []
        self.sent: list[Any] = []

    def handle(self, request: Request) -> Response:
        body = json.loads(request.body) if request.body else None
        if request.path.endswith("/messages/claim"):
            out, self.queue = self.queue, []
            return answer(200, {"messages": out})
        if request.path.endswith("/messages/ack"):
            self.acks.append(body)
            return answer(200, {"messages": [], "position": 1})
        if request.path == "/v1/messages":
            self.sent.append(body)
            return answer(201, {"items": [{"id": "new"}], "position": 1})
        return answer(404, {"title": "no"})


def client(fake: FakeHive) -> HiveClient:
    return HiveClient("http://hive.test", "enrol", transport=FakeTransport(fake.handle))


def test_handled_messages_are_acked_with_their_attempt_and_a_failure_is_not() -> None:
    fake, seen = FakeHive(), []
    stopping = threading.Event()

    def on_message(m: ReceivedMessage, messenger: Messenger) -> None:
        seen.append(m.id)
        if isinstance(m.body, dict) and m.body.get("boom"):
            raise RuntimeError("cannot")
        messenger.send(to_bot="x", body={"re": m.id}, conversation=m.conversation)

    with client(fake) as c:
        messenger = Messenger(c, lambda: ME)
        poller = MessagePoller(c, messenger, on_message, lambda: ME, stopping, lambda _: None)
        thread = threading.Thread(target=poller.run)
        thread.start()
        wait_for(lambda: fake.acks, what="an ack")
        stopping.set()
        thread.join(timeout=5)
    assert seen == ["m1", "m2"]
    assert fake.acks == [{"messages": [{"message_id": "m1", "attempt": 1}]}]
    assert fake.sent == [{"to_bot": "x", "body": {"re": "m1"}, "conversation": "c"}]


def test_relay_sends_its_payload_and_refuses_a_bad_one() -> None:
    fake = FakeHive()
    with client(fake) as c:
        messenger = Messenger(c, lambda: ME)
        assert relay(messenger, {"to_pool": "p", "body": [1]}) == {"sent": ["new"]}
        with pytest.raises(HandlerError):
            relay(messenger, {"body": 1})  # no address
        with pytest.raises(HandlerError):
            relay(messenger, [1])
    assert fake.sent == [{"to_pool": "p", "body": [1]}]
