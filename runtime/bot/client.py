"""HiveClient: the bot's side of the hive's HTTP contract (docs/http-api.md).

The bot's threads share one client; it speaks the contract, and its ``Transport``
carries the requests (by default ``http_transport``: keep-alive HTTP/1.1 connections).
Registration uses the enrolment token; every other call uses the token the registration
returned, passed explicitly (``bot=``) so that a thread acting for an old registration
never borrows the credentials of a newer one. Transport errors and 503 are retried with
capped exponential backoff and full jitter until a deadline; everything else the hive says
is turned into one of the exceptions below.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any

import orjson

from runtime.bot import JSON
from runtime.bot.http_transport import HTTPTransport
from runtime.bot.transport import Response, Timeouts, Transport, TransportError

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4096
"""The longest error the hive accepts in a ``fail`` report."""

RETRYABLE = (TransportError,)
"""What a request may fail with and be sent again: the hive unreachable, its answer lost."""

DEFAULT_TIMEOUT = Timeouts(connect=5.0, read=30.0, write=30.0, pool=30.0)
CLAIM_READ_MARGIN_S = 10.0
CONFIG_VERSION_HEADER = "Apiary-Config-Version"  # on claim answers: the version in force
"""How much longer than the long-poll's ``wait_s`` a claim may take to answer."""


# -- what travels ---------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """Who the bot is in the hive, until it is lost or deregisters."""

    bot_id: str
    token: str = field(repr=False)
    heartbeat_interval_s: float
    lease_ttl_s: float
    config_version: int = 0  # the hive's runtime configuration the bot runs by
    start_in_finish: bool = False  # a finish may carry its start (``ran_s``); older hives: no


@dataclass(frozen=True)
class Terms:
    """What the config in force asks of a bot: how often to heartbeat, how long its lease
    lasts; and which version that is. They change while the registration stays."""

    heartbeat_interval_s: float
    lease_ttl_s: float
    config_version: int

    @classmethod
    def of(cls, registration: Registration) -> Terms:
        return cls(
            registration.heartbeat_interval_s,
            registration.lease_ttl_s,
            registration.config_version,
        )


@dataclass(frozen=True)
class ClaimedTask:
    """A task the hive assigned to the bot; ``fencing_token`` goes back with every report."""

    id: str
    type: str
    priority: int
    capabilities: tuple[str, ...]
    payload: JSON
    fencing_token: int


@dataclass(frozen=True)
class ReceivedMessage:
    """A message handed to the bot; ``attempt`` goes back with its acknowledgement."""

    id: str
    sender: str
    conversation: str | None
    seq: int
    task_id: str | None
    body: JSON
    attempt: int


@dataclass(frozen=True)
class TaskRef:
    """A ``start`` item."""

    task_id: str
    fencing_token: int


@dataclass(frozen=True)
class TaskResult:
    """A ``complete`` item; the result is encoded once, when it is made."""

    task_id: str
    fencing_token: int
    result_json: bytes = field(repr=False)
    ran_s: float | None = None  # the start was not reported: how long the task ran

    @classmethod
    def of(cls, task_id: str, fencing_token: int, result: JSON) -> TaskResult:
        """Raises ``TypeError`` when ``result`` is not JSON."""
        return cls(task_id, fencing_token, orjson.dumps(result))


@dataclass(frozen=True)
class TaskFailure:
    """A ``fail`` item; the error is cut to what the hive accepts."""

    task_id: str
    fencing_token: int
    error: str
    ran_s: float | None = None  # as ``TaskResult``'s
    error_kind: str | None = None  # a short name, for the hive's retry policy
    retryable: bool = True  # False: another attempt would fail the same way

    def __post_init__(self) -> None:
        if len(self.error) > MAX_ERROR_CHARS:
            object.__setattr__(self, "error", self.error[: MAX_ERROR_CHARS - 1] + "…")


@dataclass(frozen=True)
class RefusedItem:
    task_id: str
    reason: str


# -- what can go wrong ------------------------------------------------------------------


class HiveClientError(Exception):
    """The hive did not do what the bot asked."""


class BotLost(HiveClientError):
    """The hive marked this bot lost (or it deregistered): what it held is gone; register again."""

    def __init__(self, problem: dict[str, Any]) -> None:
        self.problem = problem
        super().__init__(problem.get("detail") or problem.get("title") or "bot lost")


class Refused(HiveClientError):
    """A report was refused (409): nothing in it was applied; ``items`` says which and why."""

    def __init__(self, items: list[RefusedItem], problem: dict[str, Any]) -> None:
        self.items = items
        self.problem = problem
        super().__init__(f"{len(items)} task(s) refused")


class Unavailable(HiveClientError):
    """The hive could not be reached or answered 503 until the retry deadline passed."""

    def __init__(self, retry_after: float | None, reason: str) -> None:
        self.retry_after = retry_after
        super().__init__(reason)


class HiveRejected(HiveClientError):
    """Any other problem response (400, 401, 403, 404, 413, 422, ...)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or ""
        super().__init__(f"{status} {detail}".strip())


# -- the client -------------------------------------------------------------------------


class HiveClient:
    def __init__(
        self,
        base_url: str,
        enrolment_token: str,
        *,
        timeout: Timeouts = DEFAULT_TIMEOUT,
        retry_deadline_s: float = 30.0,
        backoff_base_s: float = 0.05,
        backoff_cap_s: float = 5.0,
        max_connections: int = 16,
        transport: Transport | None = None,
        user_agent: str = "apiary-bot",
    ) -> None:
        """``transport`` carries the requests (by default: ``max_connections`` keep-alive
        connections to ``base_url``); a fake hive in unit tests."""
        self._enrolment_token = enrolment_token
        self._timeout = timeout
        self._retry_deadline_s = retry_deadline_s
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._closed = threading.Event()
        self.config_in_force = 0  # the newest config version the hive has said is in force
        self.config_news = threading.Event()  # set when it moves: time to heartbeat
        if transport is None:
            transport = HTTPTransport(base_url, max_connections=max_connections)
        self._transport = transport
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self._registration: Registration | None = None

    @property
    def registration(self) -> Registration | None:
        """The latest registration, used when a call is not given ``bot=``."""
        return self._registration

    def close(self) -> None:
        self._closed.set()
        self._transport.close()

    def __enter__(self) -> HiveClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- bots --------------------------------------------------------------------------

    def register(
        self,
        name: str,
        capabilities: Sequence[str],
        max_concurrency: int,
        version: str,
        *,
        pool: str | None = None,
        launch_id: str | None = None,
        takes_messages: bool = True,
    ) -> Registration:
        """``takes_messages``: whether this bot claims messages; only such a bot is sent any
        (said only when false: a hive before the field took every bot for a recipient)."""
        body: dict[str, object] = {
            "name": name,
            "capabilities": list(capabilities),
            "max_concurrency": max_concurrency,
            "version": version,
        }
        if pool is not None:
            body["pool"] = pool
        if launch_id is not None:
            body["launch_id"] = launch_id
        if not takes_messages:
            body["takes_messages"] = False
        response = self._call(
            "POST",
            "/v1/bots",
            token=self._enrolment_token,
            body=body,
            action="register",
        )
        if response.status not in (200, 201):
            raise HiveRejected(response.status, _problem(response))
        data = _body(response)
        try:
            registration = Registration(
                bot_id=str(data["bot_id"]),
                token=str(data["token"]),
                heartbeat_interval_s=float(data["heartbeat_interval_s"]),
                lease_ttl_s=float(data["lease_ttl_s"]),
                config_version=int(data.get("config_version", 0)),
                start_in_finish=data.get("start_in_finish") is True,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise _malformed(response, "registration") from e
        self._registration = registration
        return registration

    def heartbeat(self, *, bot: Registration | None = None, terms: Terms | None = None) -> Terms:
        """Renews the bot's lease, saying which config version it runs by (``terms``: the
        ones it has, by default those of its registration); returns the terms of the config
        in force, as the hive answered (a new version reaches the bot this way)."""
        me = self._me(bot)
        mine = terms or Terms.of(me)
        response = self._call(
            "POST",
            f"/v1/bots/{me.bot_id}/heartbeat",
            token=me.token,
            body={"config_version": mine.config_version},
            action="heartbeat",
            deadline_s=min(self._retry_deadline_s, mine.lease_ttl_s),
        )
        self._check(response, reports=False)
        data = _body(response)
        if not isinstance(data, dict) or "config_version" not in data:
            return mine  # a hive that does not say: the terms stay as they are
        try:
            return Terms(
                heartbeat_interval_s=float(data["heartbeat_interval_s"]),
                lease_ttl_s=float(data["lease_ttl_s"]),
                config_version=int(data["config_version"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise _malformed(response, "heartbeat") from e

    def claim(
        self, max_tasks: int, wait_s: float, *, bot: Registration | None = None
    ) -> list[ClaimedTask]:
        me = self._me(bot)
        response = self._call(
            "POST",
            f"/v1/bots/{me.bot_id}/claim",
            token=me.token,
            body={
                "max_tasks": max_tasks,
                "wait_s": int(wait_s) if wait_s == int(wait_s) else wait_s,
            },
            action="claim",
            read_timeout_s=wait_s + CLAIM_READ_MARGIN_S,
        )
        self._check(response, reports=False)
        data = _body(response)
        try:
            return [
                ClaimedTask(
                    id=str(t["id"]),
                    type=str(t["type"]),
                    priority=int(t["priority"]),
                    capabilities=tuple(t["capabilities"]),
                    payload=t["payload"],
                    fencing_token=int(t["fencing_token"]),
                )
                for t in data["tasks"]
            ]
        except (KeyError, TypeError, ValueError) as e:
            raise _malformed(response, "claim") from e

    def start(self, items: Sequence[TaskRef], *, bot: Registration | None = None) -> list[str]:
        """Reports that the bot began these tasks; returns the ids the hive lists."""
        me = self._me(bot)
        body = {"tasks": [{"task_id": i.task_id, "fencing_token": i.fencing_token} for i in items]}
        response = self._call(
            "POST", f"/v1/bots/{me.bot_id}/start", token=me.token, body=body, action="start"
        )
        self._check(response, reports=True)
        data = _body(response)
        try:
            return [str(i) for i in data["tasks"]]
        except (KeyError, TypeError) as e:
            raise _malformed(response, "start") from e

    def complete(self, items: Sequence[TaskResult], *, bot: Registration | None = None) -> None:
        me = self._me(bot)
        body = {
            "tasks": [
                {
                    "task_id": i.task_id,
                    "fencing_token": i.fencing_token,
                    "result": orjson.Fragment(i.result_json),
                    **_ran(i.ran_s),
                }
                for i in items
            ]
        }
        response = self._call(
            "POST", f"/v1/bots/{me.bot_id}/complete", token=me.token, body=body, action="complete"
        )
        self._check(response, reports=True)

    def fail(self, items: Sequence[TaskFailure], *, bot: Registration | None = None) -> None:
        me = self._me(bot)
        body = {
            "tasks": [
                {
                    "task_id": i.task_id,
                    "fencing_token": i.fencing_token,
                    "error": i.error,
                    **_ran(i.ran_s),
                    **_kind(i),
                }
                for i in items
            ]
        }
        response = self._call(
            "POST", f"/v1/bots/{me.bot_id}/fail", token=me.token, body=body, action="fail"
        )
        self._check(response, reports=True)

    def send_message(
        self,
        body: JSON,
        to: dict[str, str],
        *,
        conversation: str | None = None,
        task_id: str | None = None,
        ttl_s: int | None = None,
        bot: Registration | None = None,
    ) -> list[str]:
        """Sends as this bot to ``{"to_bot": id}``, ``{"to_capability": c}`` or
        ``{"to_pool": p}``; returns the ids of the messages made (one per bot of a pool)."""
        me = self._me(bot)
        extra = {"conversation": conversation, "task_id": task_id, "ttl_s": ttl_s}
        payload = {**to, "body": body, **{k: v for k, v in extra.items() if v is not None}}
        response = self._call("POST", "/v1/messages", token=me.token, body=payload, action="send")
        self._check_messages(response)
        try:
            return [str(m["id"]) for m in _body(response)["items"]]
        except (KeyError, TypeError) as e:
            raise _malformed(response, "send") from e

    def claim_messages(
        self, max_messages: int, wait_s: float, *, bot: Registration | None = None
    ) -> list[ReceivedMessage]:
        me = self._me(bot)
        response = self._call(
            "POST",
            f"/v1/bots/{me.bot_id}/messages/claim",
            token=me.token,
            body={"max_messages": max_messages, "wait_s": wait_s},
            action="claim_messages",
            read_timeout_s=wait_s + CLAIM_READ_MARGIN_S,
        )
        self._check_messages(response)
        try:
            return [
                ReceivedMessage(
                    id=str(m["id"]),
                    sender=str(m["sender"]),
                    conversation=m["conversation"],
                    seq=int(m["seq"]),
                    task_id=m["task_id"],
                    body=m["body"],
                    attempt=int(m["attempt"]),
                )
                for m in _body(response)["messages"]
            ]
        except (KeyError, TypeError, ValueError) as e:
            raise _malformed(response, "claim_messages") from e

    def ack_messages(
        self, items: Sequence[ReceivedMessage], *, bot: Registration | None = None
    ) -> None:
        me = self._me(bot)
        body = {"messages": [{"message_id": m.id, "attempt": m.attempt} for m in items]}
        response = self._call(
            "POST", f"/v1/bots/{me.bot_id}/messages/ack", token=me.token, body=body, action="ack"
        )
        self._check_messages(response)

    def deregister(self, *, bot: Registration | None = None) -> None:
        """Leaves the hive; whatever the bot still held returns to pending."""
        me = self._me(bot)
        response = self._call(
            "DELETE", f"/v1/bots/{me.bot_id}", token=me.token, body=None, action="deregister"
        )
        self._check(response, reports=False)
        if self._registration is me:
            self._registration = None

    # -- machinery ---------------------------------------------------------------------

    def _me(self, bot: Registration | None) -> Registration:
        me = bot or self._registration
        if me is None:
            raise RuntimeError("the bot is not registered")
        return me

    def _heard_config(self, response: Response) -> None:
        said = response.headers.get(CONFIG_VERSION_HEADER)
        if said is not None and said.isdigit() and int(said) > self.config_in_force:
            self.config_in_force = int(said)
            self.config_news.set()

    def _call(
        self,
        method: str,
        path: str,
        *,
        token: str,
        body: dict[str, Any] | None,
        action: str,
        read_timeout_s: float | None = None,
        deadline_s: float | None = None,
    ) -> Response:
        """One logical request (one ``X-Request-ID``), retried while the hive is unreachable."""
        request_id = f"bot-{uuid.uuid4().hex}"
        headers = {
            **self._headers,
            "Authorization": f"Bearer {token}",
            "X-Request-ID": request_id,
        }
        content: bytes | None = None
        if body is not None:
            content = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        timeout = self._timeout
        if read_timeout_s is not None:
            timeout = replace(timeout, read=max(read_timeout_s, timeout.read))
        deadline = time.monotonic() + (self._retry_deadline_s if deadline_s is None else deadline_s)
        attempt = 0
        while True:
            if self._closed.is_set():
                raise RuntimeError("the client is closed")
            retry_after: float | None = None
            try:
                response = self._transport.send(method, path, headers, content, timeout)
            except RETRYABLE as e:
                reason = str(e)
                failure: Exception | None = e
            else:
                if response.status not in WAIT_AND_RETRY:
                    self._heard_config(response)
                    return response
                retry_after = _retry_after(response)
                reason, failure = f"{response.status} {_reason(response.status)}", None
            delay = self._backoff(attempt, retry_after)
            if self._closed.is_set() or time.monotonic() + delay > deadline:
                raise Unavailable(retry_after, f"{action}: {reason}") from failure
            log.warning(
                "hive unavailable; retrying",
                extra={
                    "action": f"{action}.retry",
                    "request_id": request_id,
                    "attempt": attempt + 1,
                    "delay_s": round(delay, 3),
                    "reason": reason,
                },
            )
            self._closed.wait(delay)  # paces the retry; close() cuts it short
            attempt += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter under a capped exponential; never sooner than ``Retry-After``."""
        ceiling = min(self._backoff_cap_s, self._backoff_base_s * (2**attempt))
        jitter = random.uniform(0.0, ceiling)
        return jitter if retry_after is None else retry_after + jitter

    @staticmethod
    def _check(response: Response, *, reports: bool) -> None:
        status = response.status
        if 200 <= status < 300:
            return
        problem = _problem(response)
        if status == 409:
            items = problem.get("items")
            if reports and isinstance(items, list) and items:
                raise Refused([_refused_item(i) for i in items], problem)
            raise BotLost(problem)
        raise HiveRejected(status, problem)

    @staticmethod
    def _check_messages(response: Response) -> None:
        """As ``_check``, but a 409 is the bot's loss only when the hive says so (a stale
        delivery or an undeliverable message is not)."""
        status = response.status
        if 200 <= status < 300:
            return
        problem = _problem(response)
        if status == 409 and str(problem.get("type", "")).endswith("/bot-not-live"):
            raise BotLost(problem)
        raise HiveRejected(status, problem)


def _body(response: Response) -> Any:
    try:
        return orjson.loads(response.body)
    except orjson.JSONDecodeError as e:
        raise _malformed(response, "body") from e


def _problem(response: Response) -> dict[str, Any]:
    try:
        problem = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        problem = None
    if isinstance(problem, dict):
        return problem
    return {"status": response.status, "title": _reason(response.status)}


def _malformed(response: Response, what: str) -> HiveRejected:
    return HiveRejected(response.status, {"title": f"malformed {what} response from the hive"})


def _refused_item(item: object) -> RefusedItem:
    if not isinstance(item, dict):
        return RefusedItem(str(item), "refused")
    task_id = item.get("task_id", item.get("id"))
    reason = item.get("reason") or item.get("detail") or item.get("title") or "refused"
    return RefusedItem(str(task_id), str(reason))


# Answers that say "not now": the hive is unavailable (503) or this bot is over its rate
# limit (429); either way the request is sent again after Retry-After, within the deadline.
WAIT_AND_RETRY = frozenset({429, 503})


def _retry_after(response: Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _reason(status: int) -> str:
    """The standard reason phrase of a status ("" for one it does not know)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _ran(ran_s: float | None) -> dict[str, float]:
    """A report's ``ran_s``, when it has one (a hive before it refuses the field)."""
    return {} if ran_s is None else {"ran_s": round(ran_s, 6)}


def _kind(failure: TaskFailure) -> dict[str, str | bool]:
    """A failure's kind and retryability, when said (a hive before them refuses the
    fields: a plain failure is sent as it always was)."""
    said: dict[str, str | bool] = {} if failure.retryable else {"retryable": False}
    return said if failure.error_kind is None else {**said, "error_kind": failure.error_kind}
