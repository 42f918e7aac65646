"""Helpers for DHT tests: village keys, signed records, peer ids."""

from __future__ import annotations

import time

from core.dht import records as rec
from core.identity import VillageKey
from core.net.keys import peer_id_from_seed


def new_village() -> tuple[VillageKey, str]:
    key = VillageKey.generate()
    return key, peer_id_from_seed(key.seed)


def make_record(key: VillageKey, peer_id: str, *, now: float | None = None, ttl: float = 300,
                seq: int = 1, tier: str = "cpu", issued: float | None = None,
                **fields: object) -> rec.VillageRecord:
    now = time.time() if now is None else now
    base = dict(v=rec.VILLAGE_VERSION, peer_id=peer_id, addrs=["/ip4/127.0.0.1/tcp/4001"],
                tier=tier,
                services=["telemetry"], limits=rec.LimitsSummary(50, 0, 0), personas=[],
                gardener_online=True, software="grove-village/test", region="eu", seq=seq,
                issued_at=now if issued is None else issued, expires_at=now + ttl)
    base.update(fields)
    return rec.VillageRecord(**base)  # type: ignore[arg-type]


def signed(key: VillageKey, record: rec.VillageRecord) -> bytes:
    return rec.sign_record(record, key.sign)
