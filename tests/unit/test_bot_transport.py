"""The bot's transport against a real HTTP server on a local port (``http.server``, in a
thread): keep-alive reuse, a connection the server closed while idle, timeouts, refusals,
answers cut short, threads sharing the pool, ``close()`` from another thread."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from runtime.bot.client import RETRYABLE, HiveClient, Unavailable
from runtime.bot.http_transport import HTTPTransport
from runtime.bot.transport import Headers, Response, Timeouts, TransportError

QUICK = Timeouts(connect=2.0, read=0.3, write=2.0, pool=0.3)
PATIENT = replace(QUICK, read=30.0)
DEADLINE_S = 10.0


class LocalHive(ThreadingHTTPServer):
    """Echoes each request (with the client's port: which connection carried it); holds
    ``/hold`` until released; ``/close`` answers with ``Connection: close``; ``/cut``
    breaks off its answer mid-body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.changed = threading.Condition()
        self.connections: set[socket.socket] = set()
        self.accepted = 0
        self.requests: list[str] = []
        self.holding = 0
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_for(self, what: str, predicate: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, DEADLINE_S), f"timed out waiting for {what}"

    def close_idle_connections(self) -> None:
        """What a server does to a keep-alive connection idle for too long."""
        with self.changed:
            for connection in self.connections:
                connection.shutdown(socket.SHUT_RDWR)
        self.wait_for("the server's side closed", lambda: not self.connections)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # it writes head and body apart: no ACK to wait for
    server: LocalHive

    def setup(self) -> None:
        super().setup()
        with self.server.changed:
            self.server.connections.add(self.connection)
            self.server.accepted += 1
            self.server.changed.notify_all()

    def finish(self) -> None:
        super().finish()
        with self.server.changed:
            self.server.connections.discard(self.connection)
            self.server.changed.notify_all()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.changed:
            self.server.requests.append(self.path)
            self.server.changed.notify_all()
        if self.path.endswith("/hold"):
            with self.server.changed:
                self.server.holding += 1
                self.server.changed.notify_all()
            self.server.release.wait()
        echo = {
            "path": self.path,
            "port": self.client_address[1],
            "body": body.decode(),
            "headers": dict(self.headers.items()),
        }
        content = orjson.dumps(echo)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Apiary-Config-Version", "7")
        if self.path.endswith("/close"):
            self.send_header("Connection", "close")
            self.close_connection = True
        if self.path.endswith("/cut"):
            self.send_header("Content-Length", str(len(content) + 100))
            self.end_headers()
            self.wfile.write(content)
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_DELETE = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests say what went wrong."""


@pytest.fixture
def hive() -> Iterator[LocalHive]:
    server = LocalHive()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(DEADLINE_S)


@pytest.fixture
def transport(hive: LocalHive) -> Iterator[HTTPTransport]:
    transport = HTTPTransport(hive.url, max_connections=3)
    yield transport
    transport.close()


def post(transport: HTTPTransport, path: str = "/v1/echo", body: bytes = b"{}") -> Any:
    response = transport.send("POST", path, {"X-Request-ID": "r"}, body, QUICK)
    assert response.status == 200
    return orjson.loads(response.body)


def test_requests_share_one_keep_alive_connection(
    hive: LocalHive, transport: HTTPTransport
) -> None:
    first = post(transport, body=b'{"n": 1}')
    second = post(transport, body=b'{"n": 2}')
    assert (first["body"], second["body"]) == ('{"n": 1}', '{"n": 2}')
    assert first["port"] == second["port"] and hive.accepted == 1
    assert first["headers"]["Host"] == hive.url.removeprefix("http://")
    assert first["headers"]["Content-Length"] == "8"
    assert first["headers"]["X-Request-ID"] == "r"


def test_the_answer_is_read_whole_with_its_headers_in_any_case(transport: HTTPTransport) -> None:
    response = transport.send("DELETE", "/v1/bots/b", {}, None, QUICK)
    assert response.status == 200
    assert response.headers["apiary-config-version"] == "7"
    assert response.headers.get("APIARY-CONFIG-VERSION") == "7"
    assert orjson.loads(response.body)["path"] == "/v1/bots/b"


def test_headers_are_found_in_any_case_and_repeated_ones_are_joined() -> None:
    headers = Headers([("Retry-After", "1"), ("Vary", "a"), ("vary", "b")])
    assert headers["retry-after"] == "1" and headers["VARY"] == "a, b" and len(headers) == 2
    assert Response(200).headers.get("Retry-After") is None


def test_requests_go_under_the_base_urls_path(hive: LocalHive) -> None:
    transport = HTTPTransport(f"{hive.url}/hive/", max_connections=1)
    try:
        assert post(transport, "/v1/echo")["path"] == "/hive/v1/echo"
    finally:
        transport.close()


def test_a_base_url_that_is_not_http_is_refused() -> None:
    for url in ("ftp://hive", "hive:8000", "http://user:pw@hive", "http://hive/?q=1"):
        with pytest.raises(ValueError):
            HTTPTransport(url)


def test_a_connection_the_server_closed_while_idle_is_replaced_unnoticed(
    hive: LocalHive, transport: HTTPTransport
) -> None:
    first = post(transport)
    hive.close_idle_connections()
    second = post(transport)
    assert second["port"] != first["port"] and hive.accepted == 2
    assert hive.requests == ["/v1/echo", "/v1/echo"]  # the stale connection carried nothing


def test_a_connection_the_server_says_it_closes_is_not_reused(
    hive: LocalHive, transport: HTTPTransport
) -> None:
    first = post(transport, "/v1/close")
    second = post(transport)
    assert second["port"] != first["port"] and hive.accepted == 2


def test_a_read_timeout_is_retryable_and_the_request_is_not_repeated(
    hive: LocalHive, transport: HTTPTransport
) -> None:
    post(transport)  # a reused connection: a timeout on it is no sign of staleness
    with pytest.raises(RETRYABLE) as timed_out:
        post(transport, "/v1/hold")
    assert isinstance(timed_out.value.__cause__, TimeoutError)
    hive.wait_for("the request held", lambda: hive.holding == 1)
    assert hive.requests == ["/v1/echo", "/v1/hold"]


def test_an_answer_cut_short_is_retryable_and_the_request_is_not_repeated(
    hive: LocalHive, transport: HTTPTransport
) -> None:
    post(transport)
    with pytest.raises(TransportError, match="IncompleteRead"):
        post(transport, "/v1/cut")
    assert hive.requests == ["/v1/echo", "/v1/cut"]


def test_a_refused_connection_is_retried_until_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    caplog.set_level(logging.WARNING, logger="runtime.bot.client")
    with (
        HiveClient(url, "enrol", retry_deadline_s=0.3, backoff_base_s=0.01) as client,
        pytest.raises(Unavailable, match="register: ConnectionRefusedError") as unavailable,
    ):
        client.register("bot-a", ["noop"], 1, "v1")
    assert isinstance(unavailable.value.__cause__, TransportError)
    assert any(getattr(r, "action", None) == "register.retry" for r in caplog.records)


def test_threads_share_the_pool_and_each_gets_its_own_answer(
    hive: LocalHive, transport: HTTPTransport
) -> None:
    mixed: list[tuple[str, str]] = []

    def work(thread: int) -> None:
        for i in range(25):
            sent = f'{{"thread": {thread}, "i": {i}}}'
            got = post(transport, body=sent.encode())["body"]
            if got != sent:
                mixed.append((sent, got))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S)
    assert not any(t.is_alive() for t in threads)
    assert mixed == [] and len(hive.requests) == 200
    assert hive.accepted <= 3  # max_connections


def test_a_thread_waits_for_a_free_connection_no_longer_than_the_pool_timeout(
    hive: LocalHive,
) -> None:
    transport = HTTPTransport(hive.url, max_connections=1)
    holder = threading.Thread(target=lambda: transport.send("POST", "/v1/hold", {}, b"{}", PATIENT))
    holder.start()
    try:
        hive.wait_for("the one connection busy", lambda: hive.holding == 1)
        with pytest.raises(TransportError, match="no connection came free"):
            post(transport)
    finally:
        hive.release.set()
        holder.join(DEADLINE_S)
        transport.close()


def test_close_from_another_thread_cuts_the_requests_on_the_wire_short(
    hive: LocalHive, transport: HTTPTransport
) -> None:
    outcome: list[BaseException] = []

    def hold() -> None:
        try:
            transport.send("POST", "/v1/hold", {}, b"{}", PATIENT)
        except BaseException as e:
            outcome.append(e)

    holder = threading.Thread(target=hold)
    holder.start()
    hive.wait_for("the request held", lambda: hive.holding == 1)
    transport.close()
    holder.join(DEADLINE_S)  # well before its read timeout
    assert not holder.is_alive() and isinstance(outcome[0], TransportError)
    with pytest.raises(TransportError, match="closed"):
        post(transport)
    assert hive.requests == ["/v1/hold"]


def test_a_client_call_after_close_fails_at_once(hive: LocalHive) -> None:
    client = HiveClient(hive.url, "enrol")
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.register("bot-a", ["noop"], 1, "v1")
    assert hive.requests == []


def test_a_header_that_would_smuggle_another_is_refused_not_retried(hive: LocalHive) -> None:
    with (
        HiveClient(hive.url, "enrol\r\nX-Evil: 1") as client,
        pytest.raises(ValueError, match="control character"),
    ):
        client.register("bot-a", ["noop"], 1, "v1")
    assert hive.requests == []
