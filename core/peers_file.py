"""`villages.json`: the villages a running node knows, for `grove peers` in another process.

Written atomically by the node; read here with every record's expiry checked again against
the reader's clock, so an expired record is never shown, however old the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.names import sanitise
from core.snapshot import VillageView, live_villages

VILLAGES_FILE = "villages.json"


def read_villages(data_dir: Path, now: float) -> tuple[VillageView, ...]:
    try:
        raw = json.loads((data_dir / VILLAGES_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return ()
    out = []
    for item in raw if isinstance(raw, list) else []:
        try:
            out.append(VillageView(
                peer_id=str(item["peer_id"]), tier=str(item["tier"]),
                services=tuple(item["services"]), region=str(item["region"]),
                personas=tuple(item["personas"]),
                gardener_online=(None if item["gardener_online"] is None
                                 else bool(item["gardener_online"])),
                reachability=str(item["reachability"]), issued_at=float(item["issued_at"]),
                expires_at=float(item["expires_at"]),
                bandwidth=str(item.get("bandwidth", "not-measured")),
                agent_memory_mb=(None if item.get("agent_memory_mb") is None
                                 else int(item["agent_memory_mb"])),
                chosen_name=sanitise(str(item.get("chosen_name", ""))),
                open_personas=tuple((str(i), str(n)) for i, n in item.get("open_personas", ()))))
        except (KeyError, TypeError, ValueError):
            continue
    return live_villages(tuple(out), now)
