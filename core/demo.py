"""`grove demo --villages N`: a local village network on loopback.

Village 1 runs in this process (its `NodeHandle` drives the tray or the terminal status);
villages 2..N are child processes (`grove node --json-status`), each with its own profile,
bootstrapped off village 1 and meeting each other through peer exchange. Their status lines
are read from their stdout. Stopping sends SIGINT/SIGTERM to every child, then SIGKILL to
any still running after the deadline.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from core.paths import APP_NAME

log = logging.getLogger(__name__)


DEMO_TELEMETRY_PERIOD = 20  # s: village health is averaged every 20 s in the demo (5 min live)

def demo_home(env: Mapping[str, str]) -> Path:
    if env.get("GROVE_HOME"):
        return Path(env["GROVE_HOME"]).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME)) / "demo"


def demo_env(env: Mapping[str, str]) -> dict[str, str]:
    """Demo villages keep their throwaway keys in files, never in the gardener's keyring."""
    out = dict(env)
    out["GROVE_HOME"] = str(demo_home(env))
    out.setdefault("GROVE_KEY_STORE", "file")
    return out


def grove_command() -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "app.cli"]


@dataclass
class Child:
    profile: str
    proc: subprocess.Popen[str]
    latest: dict[str, object] = field(default_factory=dict)
    stderr_tail: list[str] = field(default_factory=list)


class DemoChildren:
    """Villages 2..N as child processes."""

    def __init__(self, count: int, bootstrap: str, env: Mapping[str, str],
                 status_interval: float = 1.0) -> None:
        self.children: list[Child] = []
        self._count = count
        self._bootstrap = bootstrap
        self._env = dict(env)
        self._interval = status_interval

    def start(self) -> None:
        for i in range(2, self._count + 2):
            profile = f"demo-{i}"
            cmd = [*grove_command(), "--profile", profile, "node", "--listen-host",
                   "127.0.0.1", "--port", "0", "--bootstrap", self._bootstrap,
                   "--no-default-bootstrap", "--json-status", "--status-interval",
                   str(self._interval), "--set", f"telemetry_period_s={DEMO_TELEMETRY_PERIOD}"]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, text=True, env=self._env,
                                    start_new_session=True)
            child = Child(profile, proc)
            self.children.append(child)
            threading.Thread(target=self._read, args=(child,), daemon=True,
                             name=f"demo-read-{profile}").start()
            threading.Thread(target=self._read_err, args=(child,), daemon=True,
                             name=f"demo-err-{profile}").start()

    @staticmethod
    def _read(child: Child) -> None:
        assert child.proc.stdout is not None
        for line in child.proc.stdout:
            try:
                child.latest = json.loads(line)
            except json.JSONDecodeError:
                continue

    @staticmethod
    def _read_err(child: Child) -> None:
        assert child.proc.stderr is not None
        for line in child.proc.stderr:
            child.stderr_tail = [*child.stderr_tail[-20:], line.rstrip()]

    def failed(self) -> list[Child]:
        return [c for c in self.children if c.proc.poll() not in (None, 0)]

    def stop(self, deadline: float) -> list[str]:
        """Ask every child to stop; kill stragglers at `deadline` (monotonic). Returns the
        profiles that had to be killed."""
        for c in self.children:
            if c.proc.poll() is None:
                try:
                    os.kill(c.proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        killed = []
        for c in self.children:
            try:
                c.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()
                killed.append(c.profile)
        return killed
