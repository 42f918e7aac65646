"""The persona registry: bounds on every field, and nothing acknowledged is lost to kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import SettingsError
from core.personas.model import MAX_PERSONAS, Persona, check
from core.personas.registry import PersonaRegistry
from tests.conftest import ROOT


@pytest.mark.parametrize(("fields", "words"), [
    ({"name": ""}, "name"),
    ({"name": "x" * 41}, "name"),
    ({"name": "bell\x07"}, "name"),
    ({"description": "d" * 281}, "description"),
    ({"status": "dancing"}, "status"),
    ({"availability": "maybe"}, "availability"),
    ({"backend": "hub-download"}, "backend"),
    ({"capacity": 0}, "capacity"),
    ({"capacity": 17}, "capacity"),
])
def test_every_field_is_bounded(fields: dict, words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        check(Persona(**{"id": "a", "name": "Ada", **fields}))


def test_add_update_remove_and_limits(tmp_path: Path) -> None:
    reg = PersonaRegistry(tmp_path / "p.db")
    ada = reg.add("  Ada  ", status="running")
    assert ada.name == "Ada" and ada.seq == 1
    assert reg.update(ada.id, status="running") == ada  # no change, no new version
    v2 = reg.update(ada.id, availability="closed")
    assert v2.seq == 2 and reg.get(ada.id).availability == "closed"
    with pytest.raises(SettingsError, match="no field"):
        reg.update(ada.id, weights="/tmp/x")
    for i in range(MAX_PERSONAS - 1):
        reg.add(f"p{i}")
    with pytest.raises(SettingsError, match="at most"):
        reg.add("one too many")
    reg.remove(ada.id)
    with pytest.raises(SettingsError, match="no persona"):
        reg.remove(ada.id)
    reg.close()
    assert len(PersonaRegistry(tmp_path / "p.db").list()) == MAX_PERSONAS - 1


WRITER = """
import sys
from core.personas.registry import PersonaRegistry
reg = PersonaRegistry(__import__('pathlib').Path(sys.argv[1]))
i = 0
while True:
    p = reg.add(f"v{i % 30}") if len(reg.list()) < 30 else None
    if p is None:
        q = reg.list()[i % 30]
        p = reg.update(q.id, capacity=1 + i % 16)
    print(p.id, p.seq, p.capacity, flush=True)
    i += 1
"""


def test_nothing_acknowledged_is_lost_to_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "personas.db"
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True)
        acked: dict[str, tuple[int, int]] = {}
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        while len(acked) < 30 or time.monotonic() < deadline - 18:
            line = proc.stdout.readline()
            pid, seq, cap = line.split()
            acked[pid] = (int(seq), int(cap))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        reg = PersonaRegistry(db)
        kept = {p.id: (p.seq, p.capacity) for p in reg.list()}
        reg.close()
        for pid, (seq, cap) in acked.items():  # every acknowledged write, or a later one
            assert pid in kept and kept[pid][0] >= seq, (pid, seq, kept.get(pid))
