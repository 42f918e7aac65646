"""`grove gateway`: the swarm's completions for people outside the network, over HTTP.

A village operator runs it (off by default; it binds to loopback unless told otherwise,
`--remote`). Every request carries an API key from the profile's key file
(`<data>/gateway-keys`, mode 0600, one key per line; `grove gateway --new-key` adds one and
prints it) as `Authorization: Bearer <key>`. The request and answer follow the OpenAI
completions shape clients already speak:

    POST /v1/completions  {"prompt": "the ", "max_tokens": 16, "level": "assured"}

`level` (Grove's own field: basic, checked or assured, default basic) picks the service level
(`core.ledger.levels`); generation is greedy (temperature 0 only). The answer's `choices[0].text`
is the completion and its `grove` object says what was served: the level, the seconds, and a
receipt - which villages served which blocks, how many signed commitments were verified, what
the checks found. `GET /v1/models` lists the model. At most MAX_IN_FLIGHT requests run at once
(more are answered 429); a body is at most MAX_BODY bytes. Python's http.server (standard
library, threads) serves it, as the web dashboard.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from app.http_thread import ServerThread
from core.errors import GardenerError
from core.ledger.levels import LEVELS
from core.swarm.text import TextNotReadable

KEYS_FILE = "gateway-keys"
MAX_BODY = 64 * 1024
MAX_TOKENS = 512
MAX_IN_FLIGHT = 4
DEFAULT_PORT = 8480

Complete = Callable[[str, int, str], dict[str, Any]]  # prompt, max tokens, level -> result


def load_keys(data_dir: Path) -> set[str]:
    """The profile's API keys (empty when it has none yet)."""
    try:
        lines = (data_dir / KEYS_FILE).read_text().splitlines()
    except FileNotFoundError:
        return set()
    return {k.strip() for k in lines if k.strip() and not k.startswith("#")}


def new_key(data_dir: Path) -> str:
    """A new API key, added to the profile's key file (0600)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = "grove-" + secrets.token_urlsafe(24)
    fd = os.open(data_dir / KEYS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(key + "\n")
    return key


class BadRequest(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def parse_request(body: bytes, model: str) -> tuple[str, int, str]:
    """(prompt, max tokens, level) from a completion request's body; BadRequest saying
    what is wrong."""
    try:
        req = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(400, "the body is not JSON") from None
    if not isinstance(req, dict):
        raise BadRequest(400, "the body is not a JSON object")
    if req.get("model", model) != model:
        raise BadRequest(404, f"model {str(req.get('model'))[:60]!r} is not served here "
                              f"(this gateway serves {model})", "model_not_found")
    prompt = req.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest(400, "prompt must be a non-empty string")
    tokens = req.get("max_tokens", 16)
    if not isinstance(tokens, int) or isinstance(tokens, bool) or not 1 <= tokens <= MAX_TOKENS:
        raise BadRequest(400, f"max_tokens must be a whole number from 1 to {MAX_TOKENS}")
    level = req.get("level", "basic")
    if level not in LEVELS:
        raise BadRequest(400, f"level must be one of {', '.join(LEVELS)}")
    if req.get("temperature", 0) not in (0, 0.0) or req.get("n", 1) != 1 or req.get("stream"):
        raise BadRequest(400, "only greedy completions are served (temperature 0, n 1, "
                              "no stream)")
    return prompt, tokens, level


def answer(result: dict[str, Any], now: float) -> dict[str, Any]:
    """The OpenAI-shaped answer to a completed request, with Grove's receipt."""
    return {
        "id": "cmpl-" + secrets.token_hex(12), "object": "text_completion",
        "created": int(now), "model": result["model"],
        "choices": [{"index": 0, "text": result["text"], "logprobs": None,
                     "finish_reason": "length"}],
        "usage": {"prompt_tokens": result["prompt_tokens"],
                  "completion_tokens": result["completion_tokens"],
                  "total_tokens": result["prompt_tokens"] + result["completion_tokens"]},
        "grove": {"level": result["level"], "seconds": result["seconds"],
                  "receipt": result["receipt"]}}


class Gateway(ServerThread):
    """The server, in a daemon thread. `complete(prompt, max_tokens, level)` runs a
    completion (blocking; raises GardenerError for what the swarm cannot do); `keys()` the
    API keys now."""

    def __init__(self, complete: Complete, keys: Callable[[], set[str]], model: str,
                 host: str, port: int) -> None:
        self.complete, self.api_keys, self.model = complete, keys, model
        self.slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self.served = 0
        gateway = self

        class Handler(_Handler):
            gw = gateway

        super().__init__(Handler, host, port, "grove-gateway")

    @property
    def url(self) -> str:
        return f"{self.origin}/v1"


class _Handler(BaseHTTPRequestHandler):
    gw: Gateway
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the node logs enough
        pass

    def _send(self, status: int, obj: dict[str, Any]) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, e: BadRequest) -> None:
        self._send(e.status, {"error": {"message": e.message, "type": e.kind}})

    def _authorised(self) -> bool:
        got = self.headers.get("Authorization", "")
        if not got.startswith("Bearer "):
            return False
        key = got[7:].strip().encode()
        return any(hmac.compare_digest(key, k.encode()) for k in self.gw.api_keys())

    def do_GET(self) -> None:
        if not self._authorised():
            return self._error(BadRequest(401, "a valid API key is needed (Authorization: "
                                               "Bearer <key>)", "authentication_error"))
        if self.path.rstrip("/") != "/v1/models":
            return self._error(BadRequest(404, "no such path", "not_found"))
        return self._send(200, {"object": "list", "data": [
            {"id": self.gw.model, "object": "model", "owned_by": "grove"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            return self._error(BadRequest(413, f"the body is over {MAX_BODY} bytes"))
        body = self.rfile.read(length)
        if not self._authorised():
            return self._error(BadRequest(401, "a valid API key is needed (Authorization: "
                                               "Bearer <key>)", "authentication_error"))
        if self.path.rstrip("/") != "/v1/completions":
            return self._error(BadRequest(404, "no such path", "not_found"))
        try:
            prompt, tokens, level = parse_request(body, self.gw.model)
        except BadRequest as e:
            return self._error(e)
        if not self.gw.slots.acquire(blocking=False):
            return self._error(BadRequest(HTTPStatus.TOO_MANY_REQUESTS,
                                          f"{MAX_IN_FLIGHT} requests are running; try again",
                                          "rate_limit_error"))
        try:
            result = self.gw.complete(prompt, tokens, level)
        except TextNotReadable as e:
            return self._error(BadRequest(400, str(e)))
        except GardenerError as e:
            return self._error(BadRequest(503, str(e), "service_unavailable"))
        finally:
            self.gw.slots.release()
        self.gw.served += 1
        return self._send(200, answer(result, time.time()))
