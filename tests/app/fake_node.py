"""A fake node for the UI: the NodeHandle surface the app uses, in memory, no network.

It keeps the real rules (settings validated by `Settings.with_changes`, personas by
`core.personas.model.check`, NodeNotRunning when stopped) and passes the same contract tests as
the real handle (tests/app/test_handle_contract.py), so a page tested against it behaves the
same against the node. Tests set any snapshot they need with `publish(**fields)`."""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import SettingsError
from core.handle import CommandFuture, NodeNotRunning
from core.personas.model import EDITABLE, Persona, check
from core.settings_schema import Settings
from core.snapshot import (
    NodeEvent,
    NodeSnapshot,
    NodeState,
    NodeStopped,
    ParticipationChanged,
    PauseChanged,
    SettingsChanged,
)


@dataclass(frozen=True)
class FakePaths:
    profile: str
    data_dir: Path
    log_dir: Path
    settings_file: Path


@dataclass
class FakeConfig:
    paths: FakePaths
    settings: Settings


class FakeHandle:
    def __init__(self, home: Path, profile: str = "fake", **settings: Any) -> None:
        base = home / profile
        self.config = FakeConfig(FakePaths(profile, base / "data", base / "logs",
                                           base / "settings.toml"),
                                 Settings().with_changes(**settings))
        self._snap = NodeSnapshot(profile=profile, settings=self.config.settings,
                                  participating=self.config.settings.participate)
        self._subs: list[tuple[Any, Any]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.commands: list[tuple[str, Any]] = []

    # -- lifecycle
    @property
    def running(self) -> bool:
        return self._snap.state is NodeState.RUNNING

    def start(self, timeout: float = 30.0) -> NodeSnapshot:
        self.publish(state=NodeState.RUNNING, peer_id="12D3KooWFake", started_at=time.time(),
                     error="", tier="cpu", tier_reason="no GPU", hardware="Fake CPU, 4 threads")
        return self._snap

    def stop(self, timeout: float = 5.0) -> bool:
        if self.running:
            self.publish(state=NodeState.STOPPED)
            self._event(NodeStopped(reason="asked to stop"))
        return True

    # -- what tests use to drive the UI
    def publish(self, **fields: Any) -> NodeSnapshot:
        self._snap = replace(self._snap, seq=self._snap.seq + 1, **fields)
        with self._lock:
            subs = list(self._subs)
        for on_snap, _ in subs:
            if on_snap:
                on_snap(self._snap)
        return self._snap

    def _event(self, event: NodeEvent) -> None:
        event = replace(event, at=time.time())
        with self._lock:
            subs = list(self._subs)
        for _, on_event in subs:
            if on_event:
                on_event(event)

    # -- the handle surface
    def snapshot(self) -> NodeSnapshot:
        return self._snap

    def subscribe(self, on_snapshot: Callable[[NodeSnapshot], None] | None = None,
                  on_event: Callable[[NodeEvent], None] | None = None) -> Callable[[], None]:
        entry = (on_snapshot, on_event)
        with self._lock:
            self._subs.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subs:
                    self._subs.remove(entry)
        return unsubscribe

    def _do(self, name: str, fn: Callable[[], Any]) -> CommandFuture:
        future = CommandFuture()
        if not self.running:  # like the real handle: a failed future, never a raise
            future.set_exception(NodeNotRunning())
            return future
        self.commands.append((name, fn))
        try:
            future.set_result(fn())
        except Exception as e:
            future.set_exception(e)
        return future

    def set_participation(self, on: bool) -> CommandFuture:
        def run() -> bool:
            self._settings(participate=on)
            self._event(ParticipationChanged(participating=on))
            return on
        return self._do("set_participation", run)

    def pause(self, until: float) -> CommandFuture:
        def run() -> float:
            self.publish(paused_until=until)
            self._event(PauseChanged(paused_until=until))
            return until
        return self._do("pause", run)

    def resume(self) -> CommandFuture:
        def run() -> None:
            self.publish(paused_until=None)
            self._event(PauseChanged(paused_until=None))
        return self._do("resume", run)

    def update_settings(self, **changes: Any) -> CommandFuture:
        return self._do("update_settings", lambda: self._settings(**changes))

    def _settings(self, **changes: Any) -> tuple[str, ...]:
        old = self.config.settings
        new = old.with_changes(**changes)  # SettingsError, as the node raises it
        changed = tuple(k for k in changes if getattr(new, k) != getattr(old, k))
        self.config.settings = new
        self.publish(settings=new, participating=new.participate)
        if changed:
            self._event(SettingsChanged(fields=changed))
        return changed

    def add_persona(self, name: str, **fields: Any) -> CommandFuture:
        def run() -> Persona:
            if set(fields) - set(EDITABLE):
                raise SettingsError(f"Personas have no field {sorted(fields)[0]!r}.")
            p = check(Persona(f"p{next(self._ids)}", name, **fields, updated_at=time.time()))
            self.publish(personas=tuple(sorted((*self._snap.personas, p),
                                               key=lambda x: (x.name.lower(), x.id))))
            return p
        return self._do("add_persona", run)

    def update_persona(self, persona_id: str, **changes: Any) -> CommandFuture:
        def run() -> Persona:
            old = self._persona(persona_id)
            new = check(replace(old, **changes))
            if new != old:
                new = replace(new, seq=old.seq + 1, updated_at=time.time())
            self.publish(personas=tuple(sorted(
                (new if p.id == persona_id else p for p in self._snap.personas),
                key=lambda x: (x.name.lower(), x.id))))
            return new
        return self._do("update_persona", run)

    def remove_persona(self, persona_id: str) -> CommandFuture:
        def run() -> None:
            self._persona(persona_id)
            self.publish(personas=tuple(p for p in self._snap.personas if p.id != persona_id))
        return self._do("remove_persona", run)

    def _persona(self, persona_id: str) -> Persona:
        for p in self._snap.personas:
            if p.id == persona_id:
                return p
        raise SettingsError(f"There is no persona {persona_id!r} in this village.")

    def run_test_job(self, seconds: float = 10.0) -> CommandFuture:
        future: CommandFuture = CommandFuture()
        if not self.running:
            future.set_exception(NodeNotRunning())
            return future
        self.publish(compute=replace(self._snap.compute, job_running=True))

        def finish() -> None:
            text = f"ran {seconds:g} s at the limit (fake)"
            self.publish(compute=replace(self._snap.compute, job_running=False,
                                         last_test=text))
            future.set_result(text)
        threading.Timer(min(seconds, 0.2), finish).start()
        return future


assert issubclass(CommandFuture, concurrent.futures.Future)
