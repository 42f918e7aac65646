"""`grove --smoke-test`: does this build work? Run by CI on the frozen bundle and the
installed .deb, and by a gardener who wants to know.

It starts a node (loopback only, no bootstrap, in a throwaway GROVE_HOME, its key in a file:
nothing of the gardener's is touched) and the tray UI offscreen, then checks that they talk
both ways: the node's first snapshot reaches the tray (its tooltip names the village), and the
tray's "Pause for 1 hour" reaches the node and comes back as a paused snapshot, then "Resume".
`start_seconds` is from the process's creation to that first snapshot in the UI. Afterwards
it exercises what a frozen build can lose: the native crypto of py-libp2p's dependencies
(fastecdsa with GMP, coincurve, PyNaCl, cryptography), aioquic, zeroconf, SQLite, the shipped
resources (icons, release keys, the digits data), and torch when the compute pack is there
(one optimizer step). One JSON object on stdout; exit 0 only if every check passed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

TIMEOUT = 30.0


def _process_start() -> float:
    import psutil

    return float(psutil.Process().create_time())


def _wait(app: Any, cond: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def _native_checks() -> dict[str, str]:
    out: dict[str, str] = {}

    def check(name: str, fn: Callable[[], str]) -> None:
        try:
            out[name] = fn()
        except Exception as e:  # every failure is reported, not raised
            out[name] = f"FAILED: {type(e).__name__}: {e}"

    def fastecdsa() -> str:
        from fastecdsa import curve, ecdsa, keys

        priv, pub = keys.gen_keypair(curve.P256)
        r, s = ecdsa.sign(b"grove", priv, curve=curve.P256)
        assert ecdsa.verify((r, s), b"grove", pub, curve=curve.P256)
        return "ok"

    def coincurve() -> str:
        import coincurve as cc

        key = cc.PrivateKey()
        sig = key.sign(b"grove")
        assert cc.PublicKey(key.public_key.format()).verify(sig, b"grove")
        return "ok"

    def nacl() -> str:
        from nacl.signing import SigningKey

        k = SigningKey.generate()
        k.verify_key.verify(k.sign(b"grove"))
        return "ok"

    def release_keys() -> str:
        from core.resources import release_keys

        return f"ok ({len(release_keys())} trusted)"

    def aioquic() -> str:
        import aioquic.quic.configuration  # noqa: F401

        return "ok"

    def zeroconf() -> str:
        import zeroconf as zc

        return f"ok ({zc.__version__})"

    def sqlite() -> str:
        import sqlite3

        con = sqlite3.connect(":memory:")
        con.execute("pragma journal_mode=wal")
        return f"ok ({sqlite3.sqlite_version})"

    def digits() -> str:
        from core.training.digits import digits_file

        return f"ok ({digits_file().stat().st_size} bytes)"

    def icons() -> str:
        from PySide6.QtWidgets import QApplication

        from app.icons import icon_for

        if QApplication.instance() is None:
            raise RuntimeError("no QApplication (the UI did not start)")

        assert not icon_for("idle").isNull()
        return "ok"

    for name, fn in (("fastecdsa", fastecdsa), ("coincurve", coincurve), ("pynacl", nacl),
                     ("release_keys", release_keys), ("aioquic", aioquic),
                     ("zeroconf", zeroconf), ("sqlite", sqlite), ("digits_data", digits),
                     ("icons", icons)):
        check(name, fn)
    return out


def _torch_check() -> tuple[str, float]:
    from core import compute_pack

    began = time.monotonic()
    try:
        import torch
    except ModuleNotFoundError as e:
        if e.name == "torch":
            return "absent (" + compute_pack.missing_sentence() + ")", 0.0
        return f"FAILED: the compute pack needs module {e.name!r}", time.monotonic() - began
    except Exception as e:  # a broken pack: say so, do not crash the report
        return f"FAILED: {type(e).__name__}: {e}", time.monotonic() - began
    try:
        model = torch.nn.Linear(8, 2)
        opt = torch.optim.Adam(model.parameters(), lr=0.1)
        loss = model(torch.randn(4, 8)).square().mean()
        loss.backward()
        opt.step()
        return f"ok ({torch.__version__})", time.monotonic() - began
    except Exception as e:
        return f"FAILED: {type(e).__name__}: {e}", time.monotonic() - began


def run_smoke(require_torch: bool = False) -> int:
    t0 = _process_start()
    result: dict[str, Any] = {"ok": False, "frozen": bool(getattr(sys, "frozen", False))}
    home = tempfile.mkdtemp(prefix="grove-smoke-")
    os.environ["GROVE_HOME"] = home
    os.environ["GROVE_KEY_STORE"] = "file"
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    handle = None
    try:
        from PySide6.QtWidgets import QApplication

        from app.bridge import NodeBridge
        from app.tray import TrayController
        from core.handle import NodeHandle
        from core.node import NodeConfig

        app = QApplication.instance() or QApplication(sys.argv[:1])
        config = NodeConfig.load("smoke", overrides={
            "listen_host": "127.0.0.1", "listen_port": 0, "use_default_bootstrap": False,
            "mdns": False})
        handle = NodeHandle(config)
        bridge = NodeBridge(handle)
        tray = TrayController(bridge)
        tray.show()
        handle.start()
        peer = handle.snapshot().peer_id
        _wait(app, lambda: bool(peer) and tray.bridge.latest().peer_id == peer
              and tray.participate.isEnabled(), "the node's snapshot in the tray")
        result["start_seconds"] = round(time.time() - t0, 3)
        tray.pause_hour.trigger()
        _wait(app, tray.resume.isVisible, "the tray's pause to reach the node")
        tray.resume.trigger()
        _wait(app, tray.pause_hour.isVisible, "the tray's resume to reach the node")
        result["ui_node"] = f"ok (village {peer[:12]}…, paused and resumed from the tray)"
        bridge.close()
    except Exception as e:
        result["ui_node"] = f"FAILED: {type(e).__name__}: {e}"
    finally:
        if handle is not None:
            handle.stop()
    result["checks"] = _native_checks()
    result["torch"], result["torch_seconds"] = _torch_check()
    result["torch_seconds"] = round(result["torch_seconds"], 3)
    from core.compute_pack import pack_report
    from core.hardware import read_nvml

    result["compute_pack"] = pack_report(read_nvml())  # which pack runs, which is needed, why
    result["total_seconds"] = round(time.time() - t0, 3)
    failed = [k for k, v in result["checks"].items() if v.startswith("FAILED")]
    if result["ui_node"].startswith("FAILED"):
        failed.append("ui_node")
    if result["torch"].startswith("FAILED") or \
            (require_torch and not result["torch"].startswith("ok")):
        failed.append("torch")
    result["failed"] = failed
    result["ok"] = not failed
    print(json.dumps(result), flush=True)
    import shutil

    shutil.rmtree(home, ignore_errors=True)
    return 0 if result["ok"] else 1
