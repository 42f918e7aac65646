"""Persona backends: the scripted one is deterministic; the OpenAI-compatible one talks to a
real HTTP server on loopback and says plainly when it is down, slow or wrong."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.personas.backends import BackendError, OpenAICompatibleBackend, ScriptedBackend
from core.personas.model import Persona

P = Persona("p1", "Ada", "A careful reviewer.", backend="openai-compatible")


def test_scripted_replies_are_deterministic() -> None:
    b = ScriptedBackend()
    t = [("Bo", "hello")]
    assert b.reply(P, t) == b.reply(P, t) and "Ada" in b.reply(P, t)
    assert b.reply(P, t) != b.reply(P, [*t, ("Ada", "hi")])


def _server(behaviour: str) -> tuple[ThreadingHTTPServer, str]:
    seen: list[dict] = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            if behaviour == "slow":
                time.sleep(2)
            if behaviour == "error":
                self.send_response(500)
                self.end_headers()
                return
            out = (b"not json" if behaviour == "garbage" else json.dumps(
                {"choices": [{"message": {"role": "assistant",
                                          "content": f" {len(body['messages'])} seen "}}]}
            ).encode())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.seen = seen  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def test_openai_compatible_backend_against_a_local_server() -> None:
    srv, url = _server("ok")
    try:
        got = OpenAICompatibleBackend(url, "tiny").reply(P, [("Bo", "hello"), ("Ada", "hi")])
        assert got == "3 seen"  # system + two turns
        sent = srv.seen[0]  # type: ignore[attr-defined]
        assert sent["model"] == "tiny" and sent["messages"][0]["role"] == "system"
        assert [m["role"] for m in sent["messages"][1:]] == ["user", "assistant"]
    finally:
        srv.shutdown()


@pytest.mark.parametrize(("behaviour", "why"), [
    ("error", "answered HTTP 500"), ("garbage", "not a chat completion"),
    ("slow", "did not answer within")])
def test_a_bad_endpoint_gets_a_plain_reason(behaviour: str, why: str) -> None:
    srv, url = _server(behaviour)
    try:
        with pytest.raises(BackendError, match=why):
            OpenAICompatibleBackend(url, "tiny", timeout=0.5).reply(P, [])
    finally:
        srv.shutdown()


def test_a_server_that_is_down_says_start_it() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(BackendError, match="not answering.*start your local model server"):
        OpenAICompatibleBackend(f"http://127.0.0.1:{port}", "tiny", timeout=2).reply(P, [])
