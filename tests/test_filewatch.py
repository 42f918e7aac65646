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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_two_hundred_watches_share_one_inotify_instance(tmp_path: Path) -> None:
    """Linux allows 128 inotify instances per user: 50 villages in one process, three
    watches each, used to run out and poll. Every watch of a trio run shares one instance,
    each still woken only by its own file."""
    def instances() -> int:
        return sum(1 for fd in os.listdir("/proc/self/fd")
                   if "inotify" in os.path.realpath(f"/proc/self/fd/{fd}"))

    before = instances()

    async def main() -> None:
        folders = [tmp_path / f"v{i % 50}" for i in range(200)]
        watches = []
        for i, folder in enumerate(folders):
            folder.mkdir(exist_ok=True)
            w = FileWatch(folder / f"f{i}.toml", poll=3600)
            w.open()
            watches.append(w)
        assert all(w.watching for w in watches)
        assert instances() - before == 1
        woke: list[int] = []

        async def wait(i: int) -> None:
            await watches[i].changed()
            woke.append(i)

        async with trio.open_nursery() as n:
            for i in (7, 8):  # folders v7 and v8; watch 57 is in v7 too (another file)
                n.start_soon(wait, i)
            n.start_soon(wait, 57)
            await trio.sleep(0.1)
            (tmp_path / "v7" / "f7.toml").write_text("x")
            await trio.sleep(1.0)
            n.cancel_scope.cancel()
        assert woke == [7]  # not 57 (same folder, another file), not 8
        for w in watches:
            w.close()

    trio.run(main)
    assert instances() == before  # closed when the run ended
