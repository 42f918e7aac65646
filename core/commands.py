"""Typed commands into the node. Frozen; created on any thread, executed on the node's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Command:
    pass


@dataclass(frozen=True)
class Stop(Command):
    reason: str = "asked to stop"


@dataclass(frozen=True)
class SetParticipation(Command):
    participate: bool


@dataclass(frozen=True)
class Pause(Command):
    until: float  # wall-clock seconds


@dataclass(frozen=True)
class Resume(Command):
    pass


@dataclass(frozen=True)
class UpdateSettings(Command):
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Connect(Command):
    address: str


@dataclass(frozen=True)
class Ping(Command):
    peer_id: str


@dataclass(frozen=True)
class Probe(Command):
    """Send `size` random bytes to a village on /grove/probe/1.0.0 and check its digest."""

    peer_id: str
    size: int = 64 * 1024


@dataclass(frozen=True)
class Average(Command):
    """Average `vector` (a float32 numpy array) with the villages matched under `key`; the
    group closes at wall-clock `close_at` and the round ends by `deadline_at`."""

    key: str
    vector: Any
    close_at: float
    deadline_at: float
    weight: float = 1.0
    max_group: int = 16
    compression: str = "none"


@dataclass(frozen=True)
class RunTestJob(Command):
    """Run the synthetic compute job through the governor for `seconds` ("test my limits")."""

    seconds: float = 10.0


@dataclass(frozen=True)
class AddPersona(Command):
    name: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UpdatePersona(Command):
    persona_id: str
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RemovePersona(Command):
    persona_id: str


@dataclass(frozen=True)
class StartConversation(Command):
    """Our persona invites personas of other villages ((village, persona id) each)."""

    persona_id: str
    partners: tuple[tuple[str, str], ...]
    turns: int = 5


@dataclass(frozen=True)
class StopConversation(Command):
    """Our persona says nothing more in the conversation (the others may still finish)."""

    conversation: str


@dataclass(frozen=True)
class Generate(Command):
    """Continue `text` by up to `new_tokens` characters through the villages serving the SWARM
    model's blocks. `on_text(chars)` (called on the node's thread, must not block) gets each
    character as it comes. Resolves to a dict: text, tokens, route, seconds, ends."""

    text: str
    new_tokens: int = 8
    on_text: Any = None


@dataclass(frozen=True)
class Complete(Command):
    """Complete `prompt` by up to `max_tokens` characters through the swarm at service
    `level` (basic, checked or assured). Resolves to `core.swarm.completion.complete`'s
    dict, with its receipt."""

    prompt: str
    max_tokens: int = 16
    level: str = "basic"
