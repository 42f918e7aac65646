"""`grove relay` and two `grove node`s that have only the relay in common, as processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, grove, wait_runtime


def _spawn(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "app.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)


def test_two_villages_meet_through_a_relay_only(grove_env: dict[str, str]) -> None:
    home = Path(grove_env["GROVE_HOME"])
    relay = _spawn(grove_env, "--profile", "relay", "relay", "--listen-host", "127.0.0.1",
                   "--port", "0", "--no-default-bootstrap")
    procs = [relay]
    try:
        boot = wait_runtime(home, "relay")["listen_addrs"][0]  # type: ignore[index]
        for name in ("alice", "bob"):
            procs.append(_spawn(grove_env, "--profile", name, "node", "--listen-host",
                                "127.0.0.1", "--no-default-bootstrap", "--bootstrap", boot,
                                "--status-interval", "0.5"))
        ids = {n: wait_runtime(home, n)["peer_id"] for n in ("alice", "bob")}
        deadline = time.monotonic() + 60
        seen: dict[str, dict[str, object]] = {}
        while time.monotonic() < deadline and len(seen) < 2:
            for me, other in (("alice", "bob"), ("bob", "alice")):
                out = grove("--profile", me, "peers", "--json", env=grove_env)
                data = json.loads(out.stdout)
                match = [v for v in data["villages"] if v["peer_id"] == ids[other]]
                if match and data["node_running"]:
                    seen[me] = match[0]
            time.sleep(0.5)
        assert set(seen) == {"alice", "bob"}, "the villages never found each other's records"
        for v in seen.values():
            assert v["tier"] == "cpu" and v["expires_at"] > time.time()
        text = grove("--profile", "alice", "peers", env=grove_env).stdout
        assert "cpu" in text and ids["bob"][:6] in text
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    assert all(p.returncode == 0 for p in procs), [p.returncode for p in procs]
    # stopped: nothing is listed any more, and the command says why
    out = grove("--profile", "alice", "peers", env=grove_env)
    assert "No node is running" in out.stderr
