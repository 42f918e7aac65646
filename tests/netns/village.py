"""Run one village inside a network namespace for the NAT test and write what it saw.

    python -m tests.netns.village --home DIR --profile home1 --listen 192.168.1.2 \
        --bootstrap /ip4/10.77.0.1/tcp/4001/p2p/<relay> --out result.json [--dial]

Without --dial it serves until --linger seconds pass; with --dial it finds the other home's
record through the DHT, connects to it by id (the record's circuit address), exchanges a
payload on /grove/probe/1.0.0, then watches whether DCUtR upgraded the connection to direct.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from core.snapshot import live_villages
from tests.nodes import make_handle, wait_for


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--listen", required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dial", action="store_true")
    ap.add_argument("--relay-id", required=True)
    ap.add_argument("--linger", type=float, default=60.0)
    args = ap.parse_args()
    out: dict[str, object] = {"profile": args.profile}
    began = time.monotonic()
    phases: dict[str, float] = {}  # s from the start, when each step was done: where the
    out["phases"] = phases  # time went, for a failure's message

    def done(step: str) -> None:
        phases[step] = round(time.monotonic() - began, 1)

    handle = make_handle(Path(args.home), args.profile, listen_host=args.listen,
                         listen_port=4001, bootstrap=(args.bootstrap,))
    handle.start()
    try:
        me = handle.snapshot().peer_id
        out["peer_id"] = me
        done("started")
        wait_for(lambda: handle.snapshot().reachability == "relay-only", 60, "a relay reservation")
        out["reachability"] = handle.snapshot().reachability_detail
        out["relays"] = list(handle.snapshot().relays)
        done("reservation")

        def other_homes() -> list[str]:
            return [v.peer_id for v in live_villages(handle.snapshot().villages, time.time())
                    if v.peer_id not in (me, args.relay_id) and v.reachability == "relay"]

        wait_for(lambda: bool(other_homes()), 90, "the other home's record")
        other = other_homes()[0]
        out["found"] = other
        done("record found")
        if args.dial:
            handle.connect(other).result(30)
            done("connected")
            result = handle.probe(other, 256 * 1024).result(30)
            out["probe"] = {"bytes": result.bytes, "seconds": result.seconds, "via": result.via}
            deadline = time.monotonic() + 20  # DCUtR gets its chance
            via = result.via
            while time.monotonic() < deadline and "direct" not in via:
                time.sleep(0.5)
                via = next((p.via for p in handle.snapshot().peers if p.peer_id == other), "")
            out["after_dcutr"] = via
            again = handle.probe(other, 64 * 1024).result(30)
            out["probe_after"] = {"bytes": again.bytes, "via": again.via}
            done("probed")
            # the relay drops with the circuit open: the node survives and says so
            Path(args.out + ".kill-relay").write_text("")
            wait_for(lambda: Path(args.out + ".relay-killed").exists(), 30, "the relay killed")
            try:
                handle.probe(other, 64 * 1024).result(40)
                out["after_relay_loss"] = "probe still worked"
            except Exception as e:
                out["after_relay_loss"] = f"{type(e).__name__}: {e}"
            wait_for(lambda: handle.snapshot().reachability != "relay-only", 90,
                     "reachability to notice the relay is gone")
            out["reachability_after_loss"] = handle.snapshot().reachability
            out["state_after_loss"] = str(handle.snapshot().state)
        else:
            deadline = time.monotonic() + args.linger
            seen: set[tuple[str, str]] = set()
            while time.monotonic() < deadline and not Path(args.out + ".done").exists():
                seen |= {(p.peer_id, p.via) for p in handle.snapshot().peers}
                time.sleep(0.2)
            out["peers_seen"] = sorted(seen)
    except Exception as e:  # the test reads the reason from the file
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        handle.stop()
        Path(args.out).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
