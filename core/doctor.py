"""`grove doctor`: what this machine offers the node, truthfully, in plain words."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import sys
from collections.abc import Callable
from typing import Any

from core import __version__
from core.compute_pack import pack_report
from core.config import load_settings
from core.hardware import nvml_status, read_nvml
from core.identity import KEY_FILE_NAME, keyring_backend_name, keyring_usable
from core.paths import NodePaths


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _port_report(host: str, port: int) -> dict[str, Any]:
    if port == 0:
        return {"listen_port": 0, "ok": True, "note": "any free port is used"}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return {"listen_port": port, "ok": False,
                    "note": f"cannot listen on {host}:{port}: {e.strerror}"}
    return {"listen_port": port, "ok": True, "note": f"{host}:{port} is free"}


def keyring_report(paths: NodePaths) -> dict[str, Any]:
    import keyring

    try:
        backend = keyring.get_keyring()
        name = keyring_backend_name(backend)
        usable = keyring_usable(backend)
    except Exception as e:  # a broken keyring configuration is a finding, not a crash
        name, usable = f"error: {e}", False
    key_file = paths.data_dir / KEY_FILE_NAME
    if usable:
        note = f"Village keys are kept in the system keyring ({name})."
    else:
        note = ("No system keyring is available: the village key is kept in a private file "
                f"({key_file}, mode 0600).")
    return {"backend": name, "usable": usable, "fallback_file": str(key_file),
            "fallback_file_exists": key_file.exists(), "note": note}


def doctor_report(paths: NodePaths, tray_probe: Callable[[], dict[str, Any]] | None = None,
                  ) -> dict[str, Any]:
    loaded = load_settings(paths.settings_file)
    s = loaded.settings
    return {
        "grove_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "profile": paths.profile,
        "paths": {"config": str(paths.config_dir), "data": str(paths.data_dir),
                  "logs": str(paths.log_dir)},
        "settings": {"file": str(paths.settings_file), "problems": loaded.messages()},
        "keyring": keyring_report(paths),
        "nvml": nvml_status(),
        "compute_pack": pack_report(read_nvml()),
        "tray": tray_probe() if tray_probe else {"available": False,
                                                 "reason": "not checked"},
        "ports": _port_report(s.listen_host, s.listen_port),
        "packages": {d: _version(d) for d in ("libp2p", "trio", "PySide6-Essentials",
                                              "torch", "nvidia-ml-py", "keyring")},
    }


def doctor_text(report: dict[str, Any]) -> str:
    lines = [f"Grove Village {report['grove_version']} on {report['platform']} "
             f"(Python {report['python']}), profile '{report['profile']}'"]
    k = report["keyring"]
    lines.append(f"  keyring:  {'ok' if k['usable'] else 'none'} - {k['note']}")
    n = report["nvml"]
    lines.append(f"  NVML:     {'ok' if n['available'] else 'unavailable'} - {n['reason']}")
    c = report["compute_pack"]
    running = {"package": "torch as a Python package", "none": "no compute pack",
               "cpu": "the CPU pack", "cuda12": "the CUDA 12 pack"}.get(
        c["running"], "a pack of unknown variant")
    lines.append(f"  compute:  {running} - {c['note']}; this computer needs the "
                 f"{c['recommended']} pack: {c['why']}")
    t = report["tray"]
    lines.append(f"  tray:     {'available' if t['available'] else 'unavailable'} - "
                 f"{t['reason']}")
    p = report["ports"]
    lines.append(f"  port:     {'ok' if p['ok'] else 'PROBLEM'} - {p['note']}")
    probs = report["settings"]["problems"]
    lines.append(f"  settings: {report['settings']['file']}"
                 + ("" if not probs else " - " + " ".join(probs)))
    lines.append(f"  data:     {report['paths']['data']}")
    lines.append(f"  logs:     {report['paths']['logs']}")
    return "\n".join(lines)
