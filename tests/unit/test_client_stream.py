"""``CoordinatorClient.console_stream`` against an in-process HTTP server that
writes server-sent events in chunks, as tornado does: comments skipped, data
split over lines and chunks joined, CRLF line ends, the end of the connection
ends the stream, and a bad event, silence beyond ``idle`` or a missing route
are dtf errors a console can act on. And a plain answer that breaks off midway
is a ServiceError too, never a raw ``http.client`` exception."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dtf_core.errors import ServiceError
from dtf_core.service.client import CoordinatorClient, EndpointMissingError

# Writes the body chunk by chunk; returns "cut" to break the answer off there.
Script = Callable[[Callable[[bytes], None]], object]


@pytest.fixture
def server() -> Iterator[Callable[[Script, int], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(script: Script, status: int = 200) -> str:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if status != 200:
                    body = json.dumps({"error": f"no endpoint {self.path}"}).encode()
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def chunk(data: bytes) -> None:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()

                if script(chunk) != "cut":  # else the answer breaks off here
                    self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(srv)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_events_in_chunks_with_comments_and_split_data(server: Any) -> None:
    def script(chunk: Callable[[bytes], None]) -> None:
        chunk(b": keep-alive\n\n")
        chunk(b'event: console\nid: 1\ndata: {"build": 1,')  # an event cut across chunks
        chunk(b' "delta": 0}\n\n')
        chunk(b'event: console\r\nid: 2\r\ndata: {"build": 2,\r\ndata: "x": "a b"}\r\n\r\n')
        chunk(b"event: other\n\n")  # no data: nothing to hand on

    client = CoordinatorClient(server(script), "t")
    assert list(client.console_stream(0, "", idle=5)) == [
        {"build": 1, "delta": 0},
        {"build": 2, "x": "a b"},
    ]


def test_a_bad_event_is_a_broken_stream(server: Any) -> None:
    def script(chunk: Callable[[bytes], None]) -> None:
        chunk(b'data: {"build": 1}\n\n')
        chunk(b"data: {not json\n\n")

    events = CoordinatorClient(server(script), "t").console_stream(0, "", idle=5)
    assert next(events) == {"build": 1}
    with pytest.raises(ServiceError, match="broke off") as caught:
        next(events)
    assert caught.value.unreachable  # asked again, as a lost connection is


def test_silence_beyond_idle_is_a_broken_stream(server: Any) -> None:
    def script(chunk: Callable[[bytes], None]) -> None:
        chunk(b'data: {"build": 1}\n\n')
        time.sleep(3)

    events = CoordinatorClient(server(script), "t").console_stream(0, "", idle=1)
    assert next(events) == {"build": 1}
    started = time.monotonic()
    with pytest.raises(ServiceError, match="broke off"):
        next(events)
    assert time.monotonic() - started < 2.5


def test_a_service_without_the_stream_says_so(server: Any) -> None:
    client = CoordinatorClient(server(lambda chunk: None, 404), "t")
    with pytest.raises(EndpointMissingError):
        next(client.console_stream(0, "", idle=5))


def test_an_answer_that_breaks_off_is_a_service_error(server: Any) -> None:
    def script(chunk: Callable[[bytes], None]) -> str:
        chunk(b'{"runs": [')
        return "cut"

    with pytest.raises(ServiceError, match="could not reach") as caught:
        CoordinatorClient(server(script), "t").runs()
    assert caught.value.unreachable  # a read: safe to ask again
