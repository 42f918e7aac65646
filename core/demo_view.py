"""Text view of a demo village: one line per village, peers named by profile."""

from __future__ import annotations

import time
from typing import Any

from core.snapshot import NodeSnapshot, format_duration, short_id, to_jsonable


def demo_status_lines(first: NodeSnapshot, children: list[Any]) -> list[str]:
    rows: list[dict[str, Any]] = [dict(to_jsonable(first))]  # type: ignore[call-overload]
    rows += [c.latest or {"profile": c.profile, "state": "starting"} for c in children]
    names = {r.get("peer_id", ""): r.get("profile", "?") for r in rows if r.get("peer_id")}
    lines = [f"{time.strftime('%H:%M:%S')}  demo village: {len(rows)} villages"]
    for r in rows:
        peers = [names.get(p["peer_id"], short_id(p["peer_id"])) for p in r.get("peers", [])]
        lines.append(
            f"  {r.get('profile', '?'):<8} {short_id(r.get('peer_id', '')):<12} "
            f"{r.get('state', '?'):<8} sees {len(peers)} peer{'s' if len(peers) != 1 else ''}"
            f" [{', '.join(sorted(peers))}]  records of {len(r.get('villages', []))}  "
            f"tier {r.get('tier') or '?'}  up {format_duration(_uptime(r))}")
    return lines


def _uptime(row: dict[str, Any]) -> float:
    started = row.get("started_at")
    return max(0.0, time.time() - started) if started and row.get("state") == "running" else 0.0
