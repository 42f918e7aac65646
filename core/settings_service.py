"""The settings service: the one owner of the settings in force.

Rules: settings flow one way - a change (the tray, the CLI, an edited settings.toml) is
checked, saved, taken live here, and every service reads `current` or waits on
`wait_changed()`; nobody writes settings anywhere else. Node thread (trio) only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from core.config import load_settings, save_settings
from core.filewatch import FileWatch
from core.settings_schema import Settings

log = logging.getLogger(__name__)

POLL = 0.5  # seconds between looks at settings.toml (opt-outs apply within 1 s)


def file_stamp(path: Any) -> object:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


class SettingsService:
    """`current` = the file's settings with this run's overrides on top. `check(settings)`
    refuses limits this machine cannot meet (SettingsError); `on_change(fields)` is told of
    every change after it is live (the governor re-decides, an event goes out)."""

    def __init__(self, path: Path, file_settings: Settings, overrides: Mapping[str, Any],
                 check: Callable[[Settings], None] = lambda s: None,
                 on_change: Callable[[tuple[str, ...]], None] = lambda f: None) -> None:
        self.path = path
        self.file_settings = file_settings
        self.overrides = dict(overrides)
        self.current = file_settings.with_changes(**self.overrides)
        self.check = check
        self.on_change = on_change
        self._changed = trio.Event()
        self._stamp: object = None

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def touch(self) -> None:
        """Wake whoever waits on a change (the village record lists the personas too)."""
        self._changed.set()
        self._changed = trio.Event()

    async def change(self, changes: Mapping[str, Any]) -> tuple[str, ...]:
        """Check, save and apply `changes`; the fields that changed. SettingsError to the
        caller for a bad value."""
        new_file = self.file_settings.with_changes(**changes)
        self.check(new_file)
        changed = tuple(k for k in changes
                        if getattr(new_file, k) != getattr(self.file_settings, k))
        if not changed:
            return ()
        await trio.to_thread.run_sync(save_settings, self.path, new_file)
        self._stamp = file_stamp(self.path)
        self._apply(new_file, changed, keep=tuple(changes))
        return changed

    def _apply(self, new_file: Settings, changed: tuple[str, ...],
               keep: tuple[str, ...] = ()) -> None:
        self.file_settings = new_file
        self.current = new_file.with_changes(
            **{k: v for k, v in self.overrides.items() if k not in keep})
        self.touch()
        self.on_change(changed)

    async def run(self) -> None:
        """settings.toml edited outside the node (`grove limits set`, an editor) is applied
        without a restart; a file with limits this machine cannot meet is refused."""
        watch = FileWatch(self.path, POLL)  # inotify where it can; a look every POLL s else
        watch.open()
        self._stamp = file_stamp(self.path)
        try:
            await self._follow(watch)
        finally:
            watch.close()

    async def _follow(self, watch: FileWatch) -> None:
        while True:
            await watch.changed()
            stamp = file_stamp(self.path)
            if stamp == self._stamp:
                continue
            self._stamp = stamp
            loaded = await trio.to_thread.run_sync(load_settings, self.path)
            self._stamp = file_stamp(self.path)  # a bad file was rewritten
            try:
                self.check(loaded.settings)
            except Exception as e:
                log.warning("settings.toml: %s; keeping the previous settings", e)
                continue
            changed = tuple(k for k in Settings.__dataclass_fields__
                            if getattr(loaded.settings, k) != getattr(self.file_settings, k))
            if changed:
                log.info("settings.toml changed: %s", ", ".join(changed))
                self._apply(loaded.settings, changed)


class FixedSettings:
    """Settings that never change (a simulated village, a test): the SettingsPort of a
    village nobody edits, except through `set`."""

    def __init__(self, settings: Settings) -> None:
        self.current = settings
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def set(self, settings: Settings) -> None:
        self.current = settings
        self._changed.set()
        self._changed = trio.Event()
