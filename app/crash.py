"""The crash handler: an exception nobody caught (GUI thread, Qt slot or any other thread)
writes a report to the profile's crash folder and the gardener is told where it is. The app
keeps running when it can; the node's own failures are reported by the node."""

from __future__ import annotations

import logging
import platform
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from core import __version__

log = logging.getLogger(__name__)


def write_report(folder: Path, exc_type: type[BaseException], exc: BaseException,
                 tb: TracebackType | None, where: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"crash-{stamp}-{int(time.time() * 1000) % 1000:03d}"
    lines = [f"Grove Village {__version__} crash report", f"when: {time.ctime()}",
             f"where: {where}", f"python: {sys.version.split()[0]}",
             f"system: {platform.platform()}", "",
             *traceback.format_exception(exc_type, exc, tb)]
    text = "\n".join(line.rstrip("\n") for line in lines) + "\n"
    # two errors in one millisecond (a slot and a thread, say) each keep their report:
    # the file is created exclusively, with a number added while the name is taken
    for n in range(1000):
        path = folder / (f"{base}.txt" if n == 0 else f"{base}-{n}.txt")
        try:
            with path.open("x", encoding="utf-8") as f:
                f.write(text)
        except FileExistsError:
            continue
        return path
    raise OSError(f"no free crash report name in {folder}")


def install(folder: Path, tell: Callable[[str], None]) -> Callable[[], None]:
    """Hook sys.excepthook and threading.excepthook; returns a function that unhooks."""
    previous = sys.excepthook, threading.excepthook

    def report(exc_type: type[BaseException], exc: BaseException,
               tb: TracebackType | None, where: str) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            previous[0](exc_type, exc, tb)
            return
        try:
            path = write_report(folder, exc_type, exc, tb, where)
        except OSError as e:
            log.critical("unexpected error (%s), and no report could be written: %s", exc, e)
            return
        log.critical("unexpected error in %s: %s; report: %s", where, exc, path)
        tell(f"Grove hit an unexpected error ({exc_type.__name__}). A report is in {path}")

    def on_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            name = args.thread.name if args.thread else "?"
            report(args.exc_type, args.exc_value, args.exc_traceback, f"thread {name}")

    sys.excepthook = lambda t, e, tb: report(t, e, tb, "the app")
    threading.excepthook = on_thread

    def uninstall() -> None:
        sys.excepthook, threading.excepthook = previous
    return uninstall
