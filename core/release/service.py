"""UpdateService: the node's daily update check, when the gardener has turned it on.

Off by default (`update_check`, `update_url`). When on, the first check runs a minute after
the node starts (jittered), then once a day, and again whenever the URL changes. The check
runs on a worker thread (urllib blocks); its outcome is the snapshot's `update` and
`<data>/update.json`, which also remembers the newest version seen from that URL so a replayed
older manifest is refused. Nothing is ever downloaded or installed here.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from core import __version__
from core.config import atomic_write
from core.release import update
from core.snapshot import UpdateView

if TYPE_CHECKING:
    from core.ports import ServiceContext

log = logging.getLogger(__name__)

STATE_FILE = "update.json"
FIRST_DELAY = 60.0
INTERVAL = 24 * 3600.0


def load_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def newest_seen(state: dict[str, Any], url: str) -> str:
    seen = state.get("newest_seen", {})
    value = seen.get(url, "") if isinstance(seen, dict) else ""
    return value if isinstance(value, str) else ""


def record(path: Path, url: str, result: update.UpdateResult, now: float) -> UpdateView:
    """Write the outcome (and, for a good manifest, the newest version seen) atomically."""
    state = load_state(path)
    seen = state.get("newest_seen") if isinstance(state.get("newest_seen"), dict) else {}
    assert isinstance(seen, dict)
    if result.status in ("available", "current"):
        seen[url] = result.version
    view = UpdateView(result.status, result.reason, result.version, now)
    state.update({"newest_seen": seen, "url": url, "status": view.status, "text": view.text,
                  "version": view.version, "checked_at": now})
    atomic_write(path, json.dumps(state, indent=1).encode(), mode=0o644)
    return view


def view_from_state(state: dict[str, Any], url: str) -> UpdateView:
    if state.get("url") != url or not isinstance(state.get("checked_at"), (int, float)):
        return UpdateView("waiting", "The first update check runs shortly.")
    return UpdateView(str(state.get("status", "")), str(state.get("text", "")),
                      str(state.get("version", "")), float(state["checked_at"]))


class UpdateService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.view = UpdateView()

    @property
    def path(self) -> Path:
        return self.ctx.data_dir / STATE_FILE

    async def run(self) -> None:
        from core.resources import release_keys

        keys = release_keys()
        started = self.ctx.clock.wall()
        while True:
            s = self.ctx.settings
            if not (s.update_check and s.update_url):
                self.view = UpdateView()
                await self.ctx.wait_for_change(3600.0)
                continue
            url = s.update_url
            state = load_state(self.path)
            self.view = view_from_state(state, url)
            due = (self.view.checked_at + INTERVAL if self.view.checked_at
                   else started + FIRST_DELAY * self.ctx.rng.uniform(0.5, 1.5))
            wait = due - self.ctx.clock.wall()
            if wait > 0:
                await self.ctx.wait_for_change(min(wait, 3600.0))
                continue
            result = await trio.to_thread.run_sync(functools.partial(
                update.check, url, keys, __version__, newest_seen(state, url),
                now=self.ctx.clock.wall()))
            self.view = record(self.path, url, result, self.ctx.clock.wall())
            log.info("update check: %s", result.reason)
