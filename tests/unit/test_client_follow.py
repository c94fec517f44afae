"""The API client across coordinator restarts, against an in-process HTTP stub:
what it tries again (503 with Retry-After, nobody listening), for how long
(``follow_timeout``), and how ``follow`` reads a run afresh from a coordinator
that numbers its events anew."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dtf_core.errors import ServiceError
from dtf_core.service.client import CoordinatorClient

# (method, path) -> (status, headers, body); the stub records every request.
Answer = Callable[[str, str], tuple[int, dict[str, str], dict[str, Any]]]


@pytest.fixture
def stub() -> Iterator[Callable[[Answer], tuple[str, list[str]]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Answer) -> tuple[str, list[str]]:
        seen: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                seen.append(f"{self.command} {self.path}")
                status, headers, body = answer(self.command, self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _reply

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}", seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


STOPPING = (503, {"Retry-After": "1"}, {"error": "the service is stopping", "status": 503})


def test_a_stopping_coordinator_is_asked_again_until_it_answers(stub: Any) -> None:
    calls = {"n": 0}

    def answer(method: str, path: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        calls["n"] += 1
        return STOPPING if calls["n"] <= 2 else (200, {}, {"run_id": "r1", "status": "running"})

    url, seen = stub(answer)
    client = CoordinatorClient(url, "t", follow_timeout=20)
    assert client.run("r1")["status"] == "running"
    assert seen == ["GET /v1/runs/r1"] * 3


def test_a_new_run_refused_while_stopping_is_sent_again(stub: Any) -> None:
    calls = {"n": 0}

    def answer(method: str, path: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        calls["n"] += 1
        return STOPPING if calls["n"] == 1 else (201, {}, {"run_id": "r1", "total": 1})

    url, seen = stub(answer)
    client = CoordinatorClient(url, "t", follow_timeout=20)
    assert client.submit("s.toml", b"x", {})["run_id"] == "r1"
    assert seen == ["POST /v1/runs"] * 2


def test_a_failing_coordinator_is_not_asked_again(stub: Any) -> None:
    # 503 without Retry-After (the scheduler is unreachable, say) is an answer.
    url, seen = stub(lambda m, p: (503, {}, {"error": "no scheduler", "status": 503}))
    with pytest.raises(ServiceError, match="no scheduler"):
        CoordinatorClient(url, "t", follow_timeout=20).workers()
    assert len(seen) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nobody_listening_is_tried_for_the_follow_timeout_only() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(ServiceError, match=r"no coordinator answered within 1\.5s"):
        CoordinatorClient(url, "t", follow_timeout=1.5).run("r1")
    assert 1.5 <= time.monotonic() - started < 8
    # Without a follow timeout one URL fails at once, as before.
    started = time.monotonic()
    with pytest.raises(ServiceError, match="could not reach"):
        CoordinatorClient(url, "t").run("r1")
    assert time.monotonic() - started < 3


def _event(seq: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {"seq": seq, "type": kind, "run_id": "r1", **fields}


def test_follow_reads_a_run_afresh_from_the_next_coordinator(stub: Any) -> None:
    first = [_event(1, "RunStarted"), _event(2, "TaskFinished"), _event(3, "ClusterChanged")]
    second = [_event(1, "RunStarted"), _event(2, "TaskFinished"), _event(3, "RunFinished")]
    state = {"instance": "a"}

    def answer(method: str, path: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        after = int(path.split("after=")[1].split("&")[0])
        if state["instance"] == "a":
            events = first[after:]
            if not events:  # handed over: the run goes on at the next coordinator
                state["instance"] = "b"
                return STOPPING
            return 200, {}, {"events": events, "next": len(first), "finished": False,
                             "status": "running", "instance": "a"}  # fmt: skip
        events = second[after:]
        return 200, {}, {"events": events, "next": len(second), "finished": True,
                         "status": "passed", "instance": "b"}  # fmt: skip

    url, seen = stub(answer)
    got = list(CoordinatorClient(url, "t", follow_timeout=20).follow("r1"))
    assert [(e["seq"], e["type"]) for e in got] == [
        (1, "RunStarted"), (2, "TaskFinished"), (3, "ClusterChanged"),
        (1, "RunStarted"), (2, "TaskFinished"), (3, "RunFinished"),
    ]  # fmt: skip
    # The next coordinator's numbering is not the old one's: read from the start.
    assert [s.split("after=")[1].split("&")[0] for s in seen] == ["0", "3", "3", "0"]
