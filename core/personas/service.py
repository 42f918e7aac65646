"""The node's persona service: the registry opened for one run, the current list (what the
snapshot, the village record and telemetry read), and the edit commands, run on a worker
thread (each is a SQLite commit)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from core.commands import AddPersona, RemovePersona, UpdatePersona
from core.personas.model import Persona
from core.personas.registry import PersonaRegistry, TalkRequest


class PersonaService:
    def __init__(self) -> None:
        self._registry: PersonaRegistry | None = None
        self.current: tuple[Persona, ...] = ()
        self._talks = trio.Event()  # set when the registry file changed: requests may wait

    @contextmanager
    def opened(self, path: Path) -> Iterator[None]:
        registry = PersonaRegistry(path)
        try:
            self._registry, self.current = registry, tuple(registry.list())
            yield
        finally:
            self._registry = None
            registry.close()

    async def refresh(self) -> bool:
        """Re-read the registry (another process edited it); whether anything changed."""
        reg = self._registry
        if reg is None:
            return False
        new = tuple(await trio.to_thread.run_sync(reg.list))
        changed, self.current = new != self.current, new
        return changed

    async def watch(self, path: Path, changed: Callable[[], None],
                    every: float = 0.5) -> None:
        """`grove personas` edits the registry from another process: re-read it when the
        file (or its WAL) changes - watched (core.filewatch), or looked at every `every` s
        where it cannot be - and call `changed()` when the list did."""
        from core.filewatch import FileWatch
        from core.settings_service import file_stamp

        watch = FileWatch(path, every, also=(f"{path.name}-wal",))
        watch.open()
        stamp = (file_stamp(path), file_stamp(f"{path}-wal"))
        try:
            while True:
                await watch.changed()
                now = (file_stamp(path), file_stamp(f"{path}-wal"))
                if now != stamp:
                    stamp = now
                    self._talks.set()
                    if await self.refresh():
                        changed()
        finally:
            watch.close()

    async def apply(self, command: AddPersona | UpdatePersona | RemovePersona
                    ) -> Persona | None:
        reg = self._registry
        assert reg is not None, "personas are edited only while the node runs"
        result: Persona | None = None
        if isinstance(command, AddPersona):
            result = await trio.to_thread.run_sync(
                lambda: reg.add(command.name, **command.fields))
        elif isinstance(command, UpdatePersona):
            result = await trio.to_thread.run_sync(
                lambda: reg.update(command.persona_id, **command.changes))
        else:
            await trio.to_thread.run_sync(reg.remove, command.persona_id)
        self.current = tuple(await trio.to_thread.run_sync(reg.list))
        return result

    # -- conversations asked for by `grove personas talk` (the ConversationService serves) --
    async def wait_talk_requests(self) -> list[TalkRequest]:
        """The waiting requests, once there are any (looked at now, then after every change
        of the registry file)."""
        while True:
            self._talks = trio.Event()  # before looking: a change while we look wakes us
            reg = self._registry
            if reg is not None:
                waiting = await trio.to_thread.run_sync(reg.talk_requests)
                if waiting:
                    return waiting
            await self._talks.wait()

    async def answer_talk(self, number: int, *, conversation: str = "", error: str = ""
                          ) -> None:
        reg = self._registry
        if reg is not None:
            await trio.to_thread.run_sync(
                lambda: reg.answer_talk(number, conversation=conversation, error=error))
