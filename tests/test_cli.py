"""`grove` as a gardener runs it: real processes, real files, plain sentences."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, grove, wait_runtime


def _no_traceback(out: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in out.stderr + out.stdout


def test_identity_is_stable(grove_env: dict[str, str]) -> None:
    first = grove("identity", env=grove_env)
    second = grove("identity", "--json", env=grove_env)
    assert first.returncode == 0 and second.returncode == 0
    assert json.loads(second.stdout)["peer_id"] == first.stdout.strip()
    other = grove("--profile", "other", "identity", env=grove_env)
    assert other.stdout.strip() != first.stdout.strip()


def test_bad_arguments_exit_2_without_traceback(grove_env: dict[str, str]) -> None:
    out = grove("node", "--port", "many", env=grove_env)
    assert out.returncode == 2 and "invalid int value" in out.stderr
    _no_traceback(out)
    out = grove("node", "--bootstrap", "/ip4/1.2.3.4/tcp/1", env=grove_env)
    assert out.returncode == 2
    assert "does not end in /p2p/<peer id>" in out.stderr
    _no_traceback(out)
    out = grove("node", "--port", "70000", env=grove_env)
    assert out.returncode == 2 and "listen_port" in out.stderr and "0 to 65535" in out.stderr
    out = grove("--profile", "../etc", "identity", env=grove_env)
    assert out.returncode == 2 and "profile name" in out.stderr
    _no_traceback(out)


def test_port_in_use_is_one_sentence(grove_env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = grove("node", "--listen-host", "127.0.0.1", "--port", str(port), env=grove_env)
    assert out.returncode == 2
    assert f"Port {port} is already in use" in out.stderr
    _no_traceback(out)


def _start_node(env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *extra, "node", "--listen-host", "127.0.0.1",
         "--no-default-bootstrap", "--json-status", "--status-interval", "0.5"],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)


def _first_status(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        assert line, "the node printed no status"
        snap = json.loads(line)
        if snap["state"] == "running":
            return snap


def test_corrupt_settings_start_on_defaults_and_are_kept(grove_env: dict[str, str]) -> None:
    home = Path(grove_env["GROVE_HOME"]) / "default"
    home.mkdir(parents=True)
    (home / "settings.toml").write_text("max_connections = -3\nregion = 'eu'\n")
    proc = _start_node(grove_env)
    try:
        snap = _first_status(proc)
        assert any("max_connections" in n for n in snap["notices"])  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Setting 'max_connections' = -3 is below 4" in err
    kept = list(home.glob("settings.toml.bad-*"))
    assert len(kept) == 1 and "max_connections = -3" in kept[0].read_text()
    assert "region = \"eu\"" in (home / "settings.toml").read_text()


def test_node_twice_shows_the_same_peer_id_and_ctrl_c_is_clean(
        grove_env: dict[str, str]) -> None:
    ids = []
    for _ in range(2):
        proc = _start_node(grove_env)
        ids.append(_first_status(proc)["peer_id"])
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert time.monotonic() - began < 5.0
    assert ids[0] == ids[1]


def test_doctor_json_is_truthful_here(grove_env: dict[str, str]) -> None:
    env = {k: v for k, v in grove_env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = ""
    out = grove("doctor", "--json", env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    from core.hardware import nvml_status

    expected = subprocess.run(
        [sys.executable, "-c", "import keyring; from core.identity import keyring_backend_name"
         " as n, keyring_usable as u; k = keyring.get_keyring(); print(n(k), u(k))"],
        env=env, text=True, capture_output=True, cwd=ROOT).stdout.split()
    assert [report["keyring"]["backend"], str(report["keyring"]["usable"])] == expected
    assert report["nvml"] == nvml_status()
    assert report["nvml"]["available"] is False or report["nvml"]["gpu_count"] >= 1
    assert report["nvml"]["reason"]
    assert report["tray"] == {"available": False,
                              "reason": "no display (DISPLAY and WAYLAND_DISPLAY unset)"}
    assert report["ports"]["ok"] is True


def _counted(line: str) -> bool:
    """The network's size this demo line reports holds 3 within its stated uncertainty."""
    m = re.search(r"counts the network: (?:about )?(\d+) villages?(?: \(±(\d+)\))?", line)
    return m is not None and abs(int(m[1]) - 3) <= int(m[2] or 0)


@pytest.mark.timeout(180)
def test_demo_village_shows_three_connected_nodes_counting_three_and_stops_within_5s(
        grove_env: dict[str, str]) -> None:
    """The three villages, named, each connected to the other two, and each counting the
    network as 3 villages within the uncertainty it states (it read "1 villages" before)."""
    env = {k: v for k, v in grove_env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "demo", "--villages", "3"],
                            env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None
    block: list[str] = []
    deadline = time.monotonic() + 120  # two 20 s telemetry periods, on a busy machine
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "the demo ended early"
            if "demo village:" in line:
                block = []
            elif " demo-" in line and "connected to" in line:
                block.append(line)
                if len(block) == 3 and all("connected to 2 villages" in b and _counted(b)
                                           for b in block):
                    break
        else:
            raise AssertionError(f"the three villages never all counted 3: {block}")
        profiles = {b.split()[2] for b in block}
        assert profiles == {"demo-1", "demo-2", "demo-3"}
        assert not [b for b in block if re.search(r"12D3KooW\w{6,}", b)]  # names, not ids
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert time.monotonic() - began < 5.0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "all 3 villages stopped cleanly" in out
    home = Path(env["GROVE_HOME"])
    assert not list(home.glob("*/data/runtime.json"))  # every village shut down
    for pid_line in home.glob("*/data/node.lock"):
        pid = pid_line.read_text().strip()
        if pid.isdigit():
            assert not os.path.exists(f"/proc/{pid}") or int(pid) == os.getpid()


def _status_until(proc: subprocess.Popen[str], check: object, timeout: float) -> dict:
    """Status lines until `check(snap)` holds; fails after `timeout` s."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "the node stopped printing status"
        snap = json.loads(line)
        if check(snap):  # type: ignore[operator]
            return snap
    raise AssertionError(f"no status line satisfied the check within {timeout:g} s")


def test_grove_train_opts_a_running_node_in_and_out(grove_env: dict[str, str]) -> None:
    out = grove("train", "--json", env=grove_env)
    assert json.loads(out.stdout)["projects"][0]["project"] == "digits"
    out = grove("train", "nope", "on", env=grove_env)
    assert out.returncode == 2 and "no training project 'nope'" in out.stderr
    _no_traceback(out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "node", "--listen-host", "127.0.0.1",
         "--no-default-bootstrap", "--json-status", "--status-interval", "0.5",
         "--set", "participate=true"],
        env=grove_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        _first_status(proc)
        assert grove("train", "digits", "on", env=grove_env).returncode == 0

        def training(on: bool) -> object:
            return lambda s: any(t["project"] == "digits" and t["running"] is on
                                 for t in s["training"])
        # the settings file is read every 0.5 s and status lines come every 0.5 s
        _status_until(proc, training(True), 3.0)
        listed = json.loads(grove("train", "--json", env=grove_env).stdout)
        assert listed["node_running"] and listed["projects"][0]["opted_in"]
        assert grove("train", "digits", "off", env=grove_env).returncode == 0
        snap = _status_until(proc, training(False), 3.0)
        assert next(t for t in snap["training"] if t["project"] == "digits")["status"] == \
            "not opted in"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


def test_grove_swarm_serve_starts_and_stops_block_serving_on_a_running_node(
        grove_env: dict[str, str]) -> None:
    out = json.loads(grove("swarm", "status", "--json", env=grove_env).stdout)
    assert out["status"] == "no node running" and out["serve"] is False
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "node", "--listen-host", "127.0.0.1",
         "--no-default-bootstrap", "--json-status", "--status-interval", "0.5",
         "--set", "participate=true"],
        env=grove_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        _first_status(proc)
        assert grove("swarm", "serve", "--max-blocks", "3", env=grove_env).returncode == 0
        # measuring one block takes about a second, then it serves (alone: from block 0)
        snap = _status_until(proc, lambda s: s["swarm"]["state"] == "online", 30.0)
        assert (snap["swarm"]["start"], snap["swarm"]["end"]) == (0, 3)
        listed = json.loads(grove("swarm", "status", "--json", env=grove_env).stdout)
        assert listed["node_running"] and listed["serving"] and listed["throughput"] > 0
        text = grove("swarm", "status", env=grove_env).stdout
        assert "serving blocks 0..2 of tiny-lm" in text and "samples/s" in text
        # training through the swarm: this village alone serves blocks 0..2 of 8, so the
        # trainer says which blocks have no server yet
        assert grove("swarm", "train", env=grove_env).returncode == 0
        snap = _status_until(proc, lambda s: s["swarm"]["train_state"] == "waiting", 30.0)
        assert "no village serves block(s) 3, 4, 5, 6, 7" in snap["swarm"]["train_status"]
        text = grove("swarm", "status", env=grove_env).stdout
        assert "Training through the swarm: waiting for servers" in text
        assert grove("swarm", "train", "--stop", env=grove_env).returncode == 0
        _status_until(proc, lambda s: s["swarm"]["train_state"] == "off", 5.0)
        assert grove("swarm", "serve", "--stop", env=grove_env).returncode == 0
        snap = _status_until(proc, lambda s: s["swarm"]["state"] == "off", 5.0)
        assert "grove swarm serve" in snap["swarm"]["status"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


def test_grove_credits_shows_exports_and_verifies_the_ledger(
        grove_env: dict[str, str], tmp_path: Path) -> None:
    from core.identity import load_or_create_key
    from core.ledger import rulings
    from core.ledger.store import Ledger
    from core.net.keys import peer_id_from_seed
    from core.paths import node_paths
    from tests.test_ledger import OTHER, OTHER_KEY, THEM, receipt

    paths = node_paths(env=grove_env).ensure()
    key, _ = load_or_create_key(paths, env=grove_env)  # the village's own key signs its head
    me = peer_id_from_seed(key.seed)
    ledger = Ledger(paths.data_dir / "ledger.db", me, key.sign)
    ids = [ledger.add(receipt(s, worker=(key, me))) for s in (1, 2, 3)]
    ledger.decide(ids[0], True).result(5)
    ledger.decide(ids[1], False, "recomputed output differs").result(5)
    ruling = rulings.Ruling(rulings.VERSION, b"w" * 32, me, THEM, OTHER, True, 0.2,
                            "recomputed", time.time())
    ledger.add_ruling(rulings.make(ruling, OTHER_KEY.sign)).result(5)  # 0.1 of stake taken
    ledger.close()
    shown = json.loads(grove("credits", "--json", env=grove_env).stdout)
    assert shown["balance"] == pytest.approx(0.06) and shown["receipts"] == 3
    assert shown["rejected"] == pytest.approx(0.16) and shown["rates"]["swarm"] == 0.01
    text = grove("credits", env=grove_env).stdout
    assert "0.0600 credits verified" in text and "recomputed output differs" in text
    assert "Rulings: 0.1000 credits of stake taken" in text
    out = tmp_path / "credits.csv"
    assert grove("credits", "export", "--csv", "--file", str(out),
                 env=grove_env).returncode == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("id,time_utc,kind,units,credits,status") and len(lines) == 5
    assert lines[1].split(",")[2:6] == ["stake", "", "-0.100000", "verified"]  # the ruling
    ok = grove("ledger", "verify", env=grove_env)
    # 3 receipts, 5 events, the ruling and its event
    assert ok.returncode == 0 and "checks out: 10 entries" in ok.stdout
    assert "signed by this village's key" in ok.stdout
    import sqlite3

    db = paths.data_dir / "ledger.db"

    def copy(src: Path, dst: Path) -> None:  # the WAL too: SQLite's own backup
        with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
            a.backup(b)

    copy(db, tmp_path / "good.db")
    with sqlite3.connect(db) as c:
        c.execute("UPDATE receipts SET units = 1, wire = substr(wire, 2) WHERE id = ?",
                  (ids[1],))
    bad = grove("ledger", "verify", env=grove_env)
    assert bad.returncode == 1 and f"receipt {ids[1]} was changed" in bad.stdout
    # balances edited: found; the whole chain rewritten without the key: found
    copy(tmp_path / "good.db", db)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE balances SET verified = verified + 100")
    bad = grove("ledger", "verify", env=grove_env)
    assert bad.returncode == 1 and "the events add up to" in bad.stdout
    copy(tmp_path / "good.db", db)
    from core.ledger.chain import GENESIS, event_digest, link

    with sqlite3.connect(db) as c:  # a pending credit inflated, the chain recomputed
        c.execute("UPDATE events SET credits = credits * 1000 WHERE status = 'pending'")
        c.execute("UPDATE balances SET pending = pending * 1000")
        head = GENESIS
        for n, what, ref, stored in c.execute(
                "SELECT n, what, ref, digest FROM chain ORDER BY n").fetchall():
            digest = stored
            if what == "event":
                row = c.execute("SELECT status, reason, credits FROM events WHERE id = ?",
                                (ref,)).fetchone()
                last = c.execute("SELECT MAX(n) FROM chain WHERE what='event' AND ref=?",
                                 (ref,)).fetchone()[0]
                if n == last:
                    digest = event_digest(ref, *row)
            head = link(head, what, ref, digest)
            c.execute("UPDATE chain SET digest = ?, hash = ? WHERE n = ?", (digest, head, n))
    bad = grove("ledger", "verify", env=grove_env)
    assert bad.returncode == 1 and "rewritten without the key" in bad.stdout


def test_grove_personas_edits_reach_a_running_node(grove_env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "node", "--listen-host", "127.0.0.1",
         "--no-default-bootstrap", "--json-status", "--status-interval", "0.5"],
        env=grove_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        _first_status(proc)
        out = grove("personas", "add", "Bo", "--description", "A gardener's helper",
                    env=grove_env)
        assert out.returncode == 0 and out.stdout.startswith("Added Bo (")
        pid = out.stdout.split("(")[1].split(")")[0]
        snap = _status_until(proc, lambda s: any(p["name"] == "Bo" for p in s["personas"]), 5.0)
        assert next(p for p in snap["personas"] if p["name"] == "Bo")["availability"] == \
            "invitation"
        assert grove("personas", "edit", pid, "availability=closed",
                     env=grove_env).returncode == 0
        _status_until(proc, lambda s: any(p["availability"] == "closed"
                                          for p in s["personas"]), 5.0)
        bad = grove("personas", "edit", pid, "capacity=99", env=grove_env)
        assert bad.returncode == 2 and "capacity is 1 to 16" in bad.stderr
        listed = json.loads(grove("personas", "--json", env=grove_env).stdout)
        assert [p["name"] for p in listed] == ["Bo"]
        assert grove("personas", "remove", pid, env=grove_env).returncode == 0
        _status_until(proc, lambda s: not s["personas"], 5.0)
        assert "No conversations yet" in grove("personas", "conversations",
                                               env=grove_env).stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


def test_grove_personas_talk_starts_a_conversation_and_follows_it(
        grove_env: dict[str, str]) -> None:
    """Two villages as a gardener runs them; `grove personas talk Ada Bo` asks the running
    node to start the conversation and prints it, named, until both agreed on all of it."""
    from core.names import village_name

    home = Path(grove_env["GROVE_HOME"])
    node = [sys.executable, "-m", "app.cli"]
    flags = ["--listen-host", "127.0.0.1", "--no-default-bootstrap"]
    nb = subprocess.Popen([*node, "--profile", "nb", "node", *flags], env=grove_env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    procs = [nb]
    try:
        boot = wait_runtime(home, "nb")
        me = subprocess.Popen([*node, "node", *flags, "--bootstrap",
                               str(boot["listen_addrs"][0])], env=grove_env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        procs.append(me)
        wait_runtime(home, "default")
        assert grove("--profile", "nb", "personas", "add", "Bo", "--availability", "open",
                     "--status", "running", env=grove_env).returncode == 0
        assert grove("personas", "add", "Ada", "--status", "running",
                     env=grove_env).returncode == 0
        villages = home / "default" / "data" / "villages.json"
        deadline = time.monotonic() + 60  # Bo open, from nb's signed record
        while '"Bo"' not in (villages.read_text() if villages.exists() else ""):
            assert time.monotonic() < deadline, "Bo never appeared in nb's record"
            time.sleep(0.5)
        missing = grove("personas", "talk", "Ada", "Nobody", env=grove_env)
        assert missing.returncode == 2 and "No neighbour's persona called 'Nobody'" in \
            missing.stderr
        out = grove("personas", "talk", "Ada", "Bo", "--turns", "2", env=grove_env,
                    timeout=120)
        assert out.returncode == 0, out.stderr
        bo = f"Bo at {village_name(str(boot['peer_id']))}"
        lines = out.stdout.splitlines()
        assert lines[0].startswith(f"Ada is talking with {bo} (conversation ")
        said = [line.split(" ", 1)[1].split(":")[0] for line in lines[1:-1]]
        assert sorted(said) == sorted(["Ada at this village", bo] * 2), lines
        assert lines[-1] == "(finished: 4 messages, agreed by everyone)"
        listed = json.loads(grove("personas", "conversations", "--json",
                                  env=grove_env).stdout)
        assert listed[0]["partners"] == [bo]
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait(timeout=15)
