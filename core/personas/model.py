"""The village's personas: what one is, and the bounds of every field (pure).

Every field is validated here, once: the CLI and the dashboard show these errors as they are.
The registry that keeps them is `core.personas.registry`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from core.errors import SettingsError

STATUSES = ("running", "sleeping", "paused", "error")
AVAILABILITY = ("open", "invitation", "closed")  # for interactions with other villages
BACKENDS = ("scripted", "openai-compatible")
MAX_PERSONAS = 32  # what a village record carries
MAX_NAME = 40
MAX_DESCRIPTION = 280
MAX_CAPACITY = 16  # concurrent conversations
_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]+$")


@dataclass(frozen=True)
class Persona:
    id: str
    name: str
    description: str = ""
    backend: str = "scripted"
    status: str = "sleeping"
    availability: str = "invitation"  # strangers cannot invite it until the gardener opens it
    capacity: int = 1
    seq: int = 1           # grows with every edit (the profile's version)
    updated_at: float = 0.0


EDITABLE = ("name", "description", "backend", "status", "availability", "capacity")


def check(p: Persona) -> Persona:
    """`p` when every field is in range; SettingsError naming the field otherwise."""
    name = p.name.strip()
    if not 1 <= len(name) <= MAX_NAME or not _NAME_RE.match(name):
        raise SettingsError(f"A persona's name must be 1 to {MAX_NAME} printable characters.",
                            f"Got {p.name!r}.")
    if len(p.description) > MAX_DESCRIPTION:
        raise SettingsError(f"A persona's description is at most {MAX_DESCRIPTION} characters.",
                            f"This one has {len(p.description)}.")
    for field, value, allowed in (("status", p.status, STATUSES),
                                  ("availability", p.availability, AVAILABILITY),
                                  ("backend", p.backend, BACKENDS)):
        if value not in allowed:
            raise SettingsError(f"Persona {field} {value!r} is not one of "
                                f"{', '.join(allowed)}.")
    if not isinstance(p.capacity, int) or not 1 <= p.capacity <= MAX_CAPACITY:
        raise SettingsError(f"A persona's capacity is 1 to {MAX_CAPACITY} conversations.",
                            f"Got {p.capacity!r}.")
    return replace(p, name=name)


