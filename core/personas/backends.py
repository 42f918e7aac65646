"""What speaks for a persona: one small interface, two backends. Blocking: call from a thread.

- `scripted`: deterministic replies from the transcript's hash (tests, demos; no model).
- `openai-compatible`: the chat-completions endpoint of a model server the gardener runs
  locally (llama.cpp's server, Ollama, vLLM...), at the URL in the settings. Timeouts and a
  plain sentence when it is down, slow or answers nonsense. The node never ships or downloads
  weights.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from typing import Protocol

from core.personas.model import Persona

MAX_REPLY = 2000
LINES = ("That is a fair point.", "Tell me more about that.", "I see it differently.",
         "Let us write that down.", "What would change your mind?", "Agreed, for now.")


class BackendError(Exception):
    """The backend cannot answer; `str()` says why and what to do, in plain words."""


class Backend(Protocol):
    def reply(self, persona: Persona, transcript: list[tuple[str, str]]) -> str:
        """The persona's next message, given (speaker name, text) so far."""
        ...


class ScriptedBackend:
    def reply(self, persona: Persona, transcript: list[tuple[str, str]]) -> str:
        digest = hashlib.sha256(repr((persona.id, transcript)).encode()).digest()
        return f"{LINES[digest[0] % len(LINES)]} ({persona.name}, turn {len(transcript) + 1})"


class OpenAICompatibleBackend:
    def __init__(self, url: str, model: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/") + "/v1/chat/completions"
        self.model = model
        self.timeout = timeout

    def reply(self, persona: Persona, transcript: list[tuple[str, str]]) -> str:
        messages = [{"role": "system", "content": f"You are {persona.name}. "
                     f"{persona.description}".strip()}]
        for speaker, text in transcript[-40:]:
            role = "assistant" if speaker == persona.name else "user"
            messages.append({"role": role, "content": f"{speaker}: {text}"})
        body = json.dumps({"model": self.model, "messages": messages,
                           "max_tokens": 256}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        where = f"the chat endpoint at {self.url}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read(1 << 20)
        except urllib.error.HTTPError as e:
            raise BackendError(f"{where} answered HTTP {e.code}: check the model name "
                               f"({self.model!r}) and the server's log") from None
        except TimeoutError:
            raise BackendError(f"{where} did not answer within {self.timeout:g} s: the "
                               "model may be too slow for this computer") from None
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise BackendError(f"{where} is not answering ({reason}): start your local "
                               "model server, or switch the persona to the scripted "
                               "backend") from None
        try:
            text = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise BackendError(f"{where} answered something that is not a chat completion"
                               ) from None
        if not isinstance(text, str) or not text.strip():
            raise BackendError(f"{where} answered an empty message")
        return text.strip()[:MAX_REPLY]


def backend_for(persona: Persona, url: str, model: str) -> Backend:
    if persona.backend == "openai-compatible":
        return OpenAICompatibleBackend(url, model)
    return ScriptedBackend()
