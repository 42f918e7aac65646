"""Files watched, not polled: inotify on the file's folder wakes the watcher at a write, an
atomic replace (write beside, rename over), a removal - and not for another file there."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import trio

from core.filewatch import FileWatch


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_a_watch_wakes_on_writes_replaces_and_removal_not_on_neighbours(tmp_path: Path) -> None:
    target = tmp_path / "settings.toml"
    target.write_text("a = 1\n")

    async def main() -> None:
        watch = FileWatch(target, poll=3600)  # a poll would never come in time
        watch.open()
        assert watch.watching
        try:
            async def expect(change: object, wakes: bool) -> None:
                with trio.move_on_after(0.5 if not wakes else 5) as scope:
                    async with trio.open_nursery() as n:
                        n.start_soon(watch.changed)
                        await trio.sleep(0.05)
                        change()  # type: ignore[operator]
                assert scope.cancelled_caught is not wakes

            await expect(lambda: (tmp_path / "other.toml").write_text("x"), wakes=False)
            await expect(lambda: target.write_text("a = 2\n"), wakes=True)

            def replace() -> None:
                tmp = tmp_path / ".settings.toml.tmp"
                tmp.write_text("a = 3\n")
                os.replace(tmp, target)

            await expect(replace, wakes=True)
            await expect(target.unlink, wakes=True)
        finally:
            watch.close()

    trio.run(main)


def test_without_inotify_it_looks_every_poll(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from trio.testing import MockClock

    from core import filewatch

    monkeypatch.setattr(filewatch, "_libc", lambda: None)

    async def main() -> float:
        watch = FileWatch(tmp_path / "pause.json", poll=0.5)
        t0 = trio.current_time()
        await watch.changed()
        assert not watch.watching
        return trio.current_time() - t0

    assert trio.run(main, clock=MockClock(autojump_threshold=0)) == pytest.approx(0.5)
