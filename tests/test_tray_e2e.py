"""The real tray app under Xvfb with a real tray host (trayer): find the icon, click it, drive the
real menu, check the node reacted, and save screenshots a person can look at
(artifacts/tray-e2e/: the tray menu and every dashboard page)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, have, need, wait_runtime

ARTIFACTS = Path(os.environ.get("GROVE_ARTIFACTS", ROOT / "artifacts")) / "tray-e2e"
PAGES = ("overview", "resources", "training", "personas", "health", "credits", "log")
_GEOMETRY = re.compile(r"(\d+)x(\d+)\+-?\d+\+-?\d+\s+\+(-?\d+)\+(-?\d+)")


class Desktop:
    def __init__(self, display: str, tmp: Path) -> None:
        self.display = display
        self.env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def x(self, *cmd: str, check: bool = True) -> str:
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=30)
        if check and out.returncode != 0:
            raise AssertionError(f"{cmd[0]} failed: {out.stderr.strip()}")
        return out.stdout

    def spawn(self, name: str, *cmd: str, env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        p = subprocess.Popen(cmd, env=env or self.env, stdout=log, stderr=subprocess.STDOUT,
                             cwd=ROOT)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()

    def wait(self, predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)

    def tray_icons(self) -> list[tuple[int, int, int, int]]:
        """(x, y, w, h) of the windows docked in trayer's panel."""
        tree = self.x("xwininfo", "-root", "-tree").splitlines()
        icons, depth = [], None
        for line in tree:
            indent = len(line) - len(line.lstrip())
            if '"panel"' in line and "trayer" in line:
                depth = indent
                continue
            if depth is not None:
                if indent <= depth and line.strip():
                    break
                m = _GEOMETRY.search(line)
                if m and '"Grove Village"' in line:
                    w, h, x, y = map(int, m.groups())
                    icons.append((x, y, w, h))
        return icons

    def shot(self, name: str, window: str = "root") -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.x("import", "-window", window, str(path))
        return path

    def colours(self, path: Path) -> int:
        return int(self.x("identify", "-format", "%k", str(path)).strip())


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Desktop]:
    need("xvfb-tray", have("Xvfb", "trayer", "xdotool", "xwininfo", "import", "identify"),
         "Xvfb, trayer, xdotool, x11-utils and imagemagick are needed (Debian packages)")
    display = f":{90 + os.getpid() % 800}"
    d = Desktop(display, tmp_path)
    d.spawn("xvfb", "Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp")
    sock = Path(f"/tmp/.X11-unix/X{display[1:]}")
    d.wait(sock.exists, 15, "Xvfb")
    d.spawn("trayer", "trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
            "--height", "32", "--SetDockType", "true", "--transparent", "false")
    d.wait(lambda: '"panel"' in d.x("xwininfo", "-root", "-tree"), 15, "trayer's panel")
    probe = subprocess.run([sys.executable, "-m", "app.cli", "_probe-tray"], env=d.env,
                           capture_output=True, text=True, timeout=30, cwd=ROOT)
    lines = probe.stdout.strip().splitlines()
    tray = json.loads(lines[-1]) if lines else {"available": False, "reason": probe.stderr}
    if not tray["available"]:
        d.stop()
    need("xvfb-tray", tray["available"], f"Qt sees no system tray under Xvfb + trayer: "
         f"{tray['reason'][-300:]} (Debian: libxcb-cursor0 and the xcb libraries)")
    try:
        yield d
    finally:
        d.stop()


@pytest.mark.capability("xvfb-tray")
@pytest.mark.timeout(240)
def test_the_real_tray_under_xvfb(desktop: Desktop, tmp_path: Path) -> None:
    d = desktop
    home = tmp_path / "home"
    env = {**d.env, "GROVE_HOME": str(home), "GROVE_KEY_STORE": "file",
           "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    grove = [sys.executable, "-m", "app.cli"]
    # a neighbour village, headless, so the tray's village has someone to talk to
    d.spawn("peer", *grove, "--profile", "peer", "node", "--listen-host", "127.0.0.1",
            "--no-default-bootstrap", env=env)
    peer = wait_runtime(home, "peer")
    (home / "village" / "data").mkdir(parents=True)
    (home / "village" / "data" / "welcomed").write_text("1\n")  # the wizard has its own test
    app = d.spawn("app", *grove, "--profile", "village", "tray", "--listen-host", "127.0.0.1",
                  "--no-default-bootstrap", "--bootstrap", str(peer["listen_addrs"][0]),
                  env=env)
    wait_runtime(home, "village")
    d.wait(lambda: bool(d.tray_icons()), 30, "the Grove icon in the tray")
    [(x, y, w, h)] = d.tray_icons()
    cx, cy = str(x + w // 2), str(y + h // 2)

    # left click: the dashboard opens
    d.x("xdotool", "mousemove", cx, cy, "click", "1")
    d.wait(lambda: d.x("xdotool", "search", "--onlyvisible", "--name", "^Grove Village$",
                       check=False).strip() != "", 15, "the dashboard window")
    dash = d.x("xdotool", "search", "--onlyvisible", "--name", "^Grove Village$").split()[-1]

    # right click: the real menu; Participate is its first item
    settings = home / "village" / "settings.toml"
    assert "participate = true" not in (settings.read_text() if settings.exists() else "")
    d.x("xdotool", "mousemove", cx, cy, "click", "3")
    time.sleep(1.0)
    menu = d.shot("tray-menu")
    d.x("xdotool", "key", "Down", "Return")
    d.wait(lambda: settings.exists() and "participate = true" in settings.read_text(), 10,
           "the node to take Participate (settings.toml)")

    # every page, each brought forward by a second launch (which must not start a node)
    for page in PAGES:
        second = subprocess.run([*grove, "--profile", "village", "tray", "--show", page],
                                env=env, capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stderr
        time.sleep(1.5)
        path = d.shot(f"dashboard-{page}", dash)
        assert d.colours(path) > 20, f"{path} looks blank"
    assert d.colours(menu) > 20
    runtime = wait_runtime(home, "village")
    assert runtime["pid"] == app.pid  # still the first instance's node

    # Quit is the menu's last item
    d.x("xdotool", "mousemove", cx, cy, "click", "3")
    time.sleep(1.0)
    d.x("xdotool", "key", "Up", "Return")
    assert app.wait(20) == 0
    assert not (home / "village" / "data" / "runtime.json").exists()
    shutil.copy(tmp_path / "app.log", ARTIFACTS / "app.log")


@pytest.mark.capability("xvfb-tray")
@pytest.mark.timeout(120)
def test_a_desktop_without_a_tray_gets_a_window(tmp_path: Path) -> None:
    """Xvfb with no tray host: `grove tray` says so once and opens its dashboard as a normal
    window (it used to fall back to a headless node nobody could see)."""
    need("xvfb-tray", have("Xvfb", "xdotool", "xwininfo", "import", "identify"),
         "Xvfb, xdotool, x11-utils and imagemagick are needed (Debian packages)")
    display = f":{900 + os.getpid() % 90}"
    d = Desktop(display, tmp_path)
    try:
        d.spawn("xvfb", "Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp")
        d.wait(Path(f"/tmp/.X11-unix/X{display[1:]}").exists, 15, "Xvfb")
        home = tmp_path / "home"
        env = {**d.env, "GROVE_HOME": str(home), "GROVE_KEY_STORE": "file",
               "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
        (home / "window" / "data").mkdir(parents=True)
        (home / "window" / "data" / "welcomed").write_text("1\n")
        app = d.spawn("app", sys.executable, "-m", "app.cli", "--profile", "window", "tray",
                      "--listen-host", "127.0.0.1", "--no-default-bootstrap", env=env)
        d.wait(lambda: d.x("xdotool", "search", "--onlyvisible", "--name",
                           "^Grove Village$", check=False).strip() != "", 60,
               "the Grove window")
        wait_runtime(home, "window")  # a running node behind it
        window = d.x("xdotool", "search", "--onlyvisible", "--name", "^Grove Village$"
                     ).split()[-1]
        time.sleep(1.5)
        path = d.shot("no-tray-window", window)
        assert d.colours(path) > 20, f"{path} looks blank"
        log = (tmp_path / "app.log").read_text()
        assert "shows no system tray; Grove opens as a window" in log
        app.terminate()
        assert app.wait(30) == 0
    finally:
        d.stop()
