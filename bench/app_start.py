"""How fast the tray app starts and how little it costs while idle.

`python -m bench.app_start --json` launches `grove tray` (a fresh profile, loopback only, no
bootstrap; the first-run wizard already done) `--runs` times and reads the milestones the app
appends to $GROVE_STARTUP_PROBE: `tray_visible` (the icon is shown, before the node and libp2p
are imported) and `first_snapshot` (the node's first snapshot rendered). Offscreen Qt by
default (there is no tray to see: the icon is shown to a platform that has none); `--xvfb`
runs under Xvfb with trayer instead. After the last start it waits `--settle` s, then measures
the process over `--idle` s: CPU % of one core, RSS, and whether torch was loaded; then the
headless node alone (`grove node`, a fresh profile) the same way.

Fields: start_seconds (median, spawn -> first snapshot rendered), tray_visible_seconds,
first_run_seconds, idle_cpu_percent, idle_rss_mb, node_idle_cpu_percent, torch_loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import print_result

ROOT = Path(__file__).resolve().parent.parent


def _milestones(path: Path) -> dict[str, float]:
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        item = json.loads(line)
        out.setdefault(item["event"], item["t"])
    return out


def _start(env: dict[str, str], home: Path, probe: Path) -> tuple[subprocess.Popen[bytes],
                                                                 float]:
    (home / "bench" / "data").mkdir(parents=True, exist_ok=True)
    (home / "bench" / "data" / "welcomed").write_text("1\n")
    probe.unlink(missing_ok=True)
    began = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--profile", "bench", "tray", "--listen-host",
         "127.0.0.1", "--no-default-bootstrap"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, began


def _wait(probe: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> dict[str, float]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = _milestones(probe)
        if "first_snapshot" in got:
            return got
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with {proc.returncode} before its first snapshot")
        time.sleep(0.02)
    raise SystemExit("no first snapshot within 60 s")


def _idle_cpu(pid: int, settle: float, seconds: float) -> float:
    """CPU % of one core the process used over `seconds`, after `settle`."""
    p = psutil.Process(pid)
    time.sleep(settle)
    t0, w0 = p.cpu_times(), time.monotonic()
    time.sleep(seconds)
    t1, w1 = p.cpu_times(), time.monotonic()
    return (t1.user + t1.system - t0.user - t0.system) / (w1 - w0) * 100


def _node_idle(env: dict[str, str], home: Path, settle: float, seconds: float) -> float:
    """The headless node alone (`grove node`, a fresh profile, loopback, no bootstrap)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--profile", "headless", "node", "--listen-host",
         "127.0.0.1", "--no-default-bootstrap"], env={**env, "GROVE_HOME": str(home)},
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return _idle_cpu(proc.pid, settle, seconds)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.app_start")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--xvfb", action="store_true", help="a real tray under Xvfb + trayer")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="grove-app-start-"))
    probe = tmp / "probe.jsonl"
    env = {**os.environ, "GROVE_HOME": str(tmp / "home"), "GROVE_KEY_STORE": "file",
           "GROVE_STARTUP_PROBE": str(probe), "GROVE_TRAY_FORCE": "1",
           "XDG_CONFIG_HOME": str(tmp / "xdg")}
    helpers: list[subprocess.Popen[bytes]] = []
    if args.xvfb:
        display = f":{200 + os.getpid() % 500}"
        helpers.append(subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24",
                                         "-nolisten", "tcp"], stderr=subprocess.DEVNULL))
        time.sleep(1.0)
        env |= {"DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        helpers.append(subprocess.Popen(
            ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
             "--height", "32", "--SetDockType", "true", "--transparent", "false"],
            env=env, stderr=subprocess.DEVNULL))
        time.sleep(1.0)
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    starts, visible = [], []
    try:
        for i in range(args.runs):
            proc, began = _start(env, tmp / "home", probe)
            got = _wait(probe, proc)
            starts.append(got["first_snapshot"] - began)
            visible.append(got["tray_visible"] - began)
            if i < args.runs - 1:
                _stop(proc)
        p = psutil.Process(proc.pid)
        cpu = _idle_cpu(proc.pid, args.settle, args.idle)
        rss = p.memory_info().rss / 2**20
        torch_loaded = any("libtorch" in m.path for m in p.memory_maps())
        _stop(proc)
        node_cpu = _node_idle(env, tmp / "node-home", args.settle, args.idle)
    finally:
        for h in helpers:
            h.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "bench": "app_start", "platform": "xvfb+trayer" if args.xvfb else "offscreen",
        "runs": args.runs, "start_seconds": round(statistics.median(starts), 3),
        "tray_visible_seconds": round(statistics.median(visible), 3),
        "first_run_seconds": round(starts[0], 3), "idle_seconds": args.idle,
        "idle_cpu_percent": round(cpu, 2), "idle_rss_mb": round(rss, 1),
        "node_idle_cpu_percent": round(node_cpu, 2),
        "torch_loaded": torch_loaded, "cpu": psutil.cpu_count()}
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
