"""Text view of a demo village: one line per village, named as the dashboard names it, with
its neighbours and the network's size as that village counts it."""

from __future__ import annotations

import time
from typing import Any

from core import humanize as hz
from core.names import village_name
from core.snapshot import NodeSnapshot, to_jsonable


def demo_status_lines(first: NodeSnapshot, children: list[Any]) -> list[str]:
    rows: list[dict[str, Any]] = [dict(to_jsonable(first))]  # type: ignore[call-overload]
    rows += [c.latest or {"profile": c.profile, "state": "starting"} for c in children]
    lines = [f"{time.strftime('%H:%M:%S')}  demo village: "
             f"{hz.plural(len(rows), 'village')} on this computer"]
    for r in rows:
        peers = [village_name(p["peer_id"]) for p in r.get("peers", [])]
        net = (r.get("telemetry") or {}).get("network") or {}
        count = hz.estimate(net.get("villages") or 0.0, net.get("uncertainty") or 1.0,
                            "village")
        name = village_name(r.get("peer_id", "")) or "(starting)"
        lines.append(
            f"  {name:<18} {r.get('profile', '?'):<8} {r.get('state', '?'):<8} "
            f"connected to {hz.plural(len(peers), 'village')} [{', '.join(sorted(peers))}]"
            f"; counts the network: {count}; up {hz.duration(_uptime(r))}")
    return lines


def _uptime(row: dict[str, Any]) -> float:
    started = row.get("started_at")
    return max(0.0, time.time() - started) if started and row.get("state") == "running" else 0.0
