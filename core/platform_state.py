"""What the desktop is doing, for the governor's rules the gardener may turn on: which programs
run (pause while a chosen one does) and whether the network connection is metered. One module,
so a test fakes the platform at one seam.

`running_programs()` -> (lower-case program names, "") or (None, why it cannot tell);
`metered()` -> (True/False, "") or (None, why it cannot tell). Linux asks NetworkManager over
D-Bus (`busctl`, part of systemd) for its `Metered` property; elsewhere it cannot tell yet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import psutil

# NetworkManager's NMMetered: 1 yes, 3 guessed yes; 2 no, 4 guessed no; 0 unknown
_METERED = {1: True, 3: True, 2: False, 4: False}


def running_programs() -> tuple[frozenset[str] | None, str]:
    names: set[str] = set()
    try:
        for proc in psutil.process_iter(["name", "exe"]):
            info = proc.info
            if info.get("name"):
                names.add(str(info["name"]).lower())
            if info.get("exe"):
                names.add(os.path.basename(str(info["exe"])).lower())
    except (psutil.Error, OSError) as e:
        return None, f"the process list cannot be read ({e})"
    return frozenset(names), ""


def metered() -> tuple[bool | None, str]:
    if not sys.platform.startswith("linux"):
        return None, f"metered connections are not detected on {sys.platform} yet"
    busctl = shutil.which("busctl")
    if busctl is None:
        return None, "busctl (systemd) is not installed, so NetworkManager cannot be asked"
    try:
        out = subprocess.run(
            [busctl, "get-property", "org.freedesktop.NetworkManager",
             "/org/freedesktop/NetworkManager", "org.freedesktop.NetworkManager", "Metered"],
            capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"NetworkManager did not answer ({e})"
    parts = out.stdout.split()
    if out.returncode != 0 or len(parts) != 2 or not parts[1].isdigit():
        return None, "NetworkManager is not running (it is what says a connection is metered)"
    value = _METERED.get(int(parts[1]))
    return (value, "") if value is not None else (None, "NetworkManager does not know")
