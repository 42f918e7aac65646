"""Start Grove when the gardener logs in, the way each desktop expects it.

Linux: an XDG autostart entry (`$XDG_CONFIG_HOME/autostart/grove-village.desktop`); macOS: a
LaunchAgent plist; Windows: a value under HKCU\\...\\Run. The entry itself is the state: no
setting can disagree with what the desktop will do.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

NAME = "grove-village"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"


def launch_command() -> list[str]:
    """How to start the tray: the frozen executable, or this Python running the app."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "tray"]
    return [sys.executable, "-m", "app.cli", "tray"]


def entry_path(platform: str, env: Mapping[str, str], home: Path) -> Path | None:
    if platform.startswith("linux"):
        base = env.get("XDG_CONFIG_HOME") or str(home / ".config")
        return Path(base) / "autostart" / f"{NAME}.desktop"
    if platform == "darwin":
        return home / "Library" / "LaunchAgents" / "org.grove.village.plist"
    return None  # Windows: the registry


def entry_text(platform: str, command: Sequence[str]) -> str:
    if platform == "darwin":
        args = "".join(f"    <string>{a}</string>\n" for a in command)
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
                '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
                '<plist version="1.0"><dict>\n'
                '  <key>Label</key><string>org.grove.village</string>\n'
                f'  <key>ProgramArguments</key><array>\n{args}  </array>\n'
                '  <key>RunAtLoad</key><true/>\n</dict></plist>\n')
    return ("[Desktop Entry]\nType=Application\nName=Grove Village\n"
            "Comment=Lend this computer to the Grove network\n"
            f"Exec={shlex.join(command)}\nIcon=grove-village\nTerminal=false\n"
            "X-GNOME-Autostart-enabled=true\n")


def is_enabled(platform: str = sys.platform, env: Mapping[str, str] | None = None,
               home: Path | None = None) -> bool:
    env = os.environ if env is None else env
    path = entry_path(platform, env, home or Path.home())
    if path is not None:
        return path.exists()
    return _windows_get() is not None  # pragma: no cover - Windows builds


def set_enabled(on: bool, platform: str = sys.platform, env: Mapping[str, str] | None = None,
                home: Path | None = None, command: Sequence[str] | None = None) -> Path | None:
    """Create or remove the entry; returns where it lives (None on Windows)."""
    env = os.environ if env is None else env
    path = entry_path(platform, env, home or Path.home())
    command = list(command or launch_command())
    if path is None:  # pragma: no cover - Windows builds
        _windows_set(subprocess_line(command) if on else None)
        return None
    if on:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(entry_text(platform, command))
        os.replace(tmp, path)
    else:
        path.unlink(missing_ok=True)
    return path


def subprocess_line(command: Sequence[str]) -> str:
    return " ".join(f'"{a}"' if " " in a else a for a in command)


if sys.platform == "win32":  # pragma: no cover - Windows builds
    import winreg

    def _windows_get() -> str | None:
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as k:
                return str(winreg.QueryValueEx(k, NAME)[0])
        except OSError:
            return None

    def _windows_set(line: str | None) -> None:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as k:
            if line is None:
                try:
                    winreg.DeleteValue(k, NAME)
                except OSError:
                    pass
            else:
                winreg.SetValueEx(k, NAME, 0, winreg.REG_SZ, line)
else:
    def _windows_get() -> str | None:
        return None

    def _windows_set(line: str | None) -> None:
        raise OSError("the Windows registry exists only on Windows")
