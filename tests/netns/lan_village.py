"""Run one village on a namespace's LAN with no bootstrap peer; write whom it met.

    python -m tests.netns.lan_village --home DIR --profile a --listen 192.168.77.2 \
        --out result.json [--wait 60]

It stops 5 s after it first sees a peer (time for the other side to see it too), or at --wait.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from tests.nodes import make_handle


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--listen", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--wait", type=float, default=60.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    out: dict[str, object] = {"profile": args.profile}
    handle = make_handle(Path(args.home), args.profile, listen_host=args.listen,
                         listen_port=4001, bootstrap=())
    handle.start()
    try:
        out["peer_id"] = handle.snapshot().peer_id
        deadline = time.monotonic() + args.wait
        peers: list[list[str]] = []
        started = time.monotonic()
        while time.monotonic() < deadline:
            peers = [[p.peer_id, p.address] for p in handle.snapshot().peers]
            if peers and "met_after_s" not in out:
                out["met_after_s"] = round(time.monotonic() - started, 2)
                deadline = min(deadline, time.monotonic() + 5)
            time.sleep(0.2)
        out["peers"] = peers
    except Exception as e:  # the test reads the reason from the file
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        handle.stop()
        Path(args.out).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
