"""The RAM cap, enforced: memory the node's compute will hold is reserved before it is
allocated; an averaging round that would pass the cap is not run (and says why), and a SWARM
span shrinks to what the cap leaves."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from core.memory import MIB, ROUND_BUFFERS, MemoryBudget, MemoryRefused
from core.swarm import throughput, wire
from core.swarm.model import MODELS
from tests.nodes import run_villages, trio_villages, trio_wait_for


def test_a_budget_refuses_past_its_cap_with_the_reason_and_frees_on_release() -> None:
    budget = MemoryBudget(100 * MIB)
    with budget.reserve(60 * MIB, "four SWARM blocks"):
        with pytest.raises(MemoryRefused) as refused:
            budget.reserve(50 * MIB, "averaging telemetry")
        assert refused.value.reason == ("averaging telemetry needs 50.0 MB, and 60.0 of the "
                                        "100 MB memory cap is in use")
        assert budget.held() == [("four SWARM blocks", 60 * MIB)] and budget.room() == 40 * MIB
    assert budget.used == 0 and budget.peak == 60 * MIB and budget.refused == 1
    budget.set_cap(None)  # no cap: anything goes
    budget.reserve(10**12, "a lot").release()

    budget = MemoryBudget(1000)  # threads reserving at once never pass the cap together
    held: list[int] = []

    def grab() -> None:
        for _ in range(200):
            try:
                r = budget.reserve(7, "a piece")
            except MemoryRefused:
                continue
            held.append(budget.used)
            r.release()

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert held and max(held) <= 1000 and budget.used == 0


@pytest.mark.timeout(240)
def test_the_cap_refuses_an_averaging_round_and_shrinks_a_swarm_span(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = MODELS["small-lm"]
    per_block = small.block_bytes() * (2 + ROUND_BUFFERS)  # the block, a copy, a round

    async def main() -> None:
        async with trio_villages(tmp_path, 1, participate=True, ram_cap_mb=256) as (node,):
            await trio_wait_for(lambda: node.ctx.memory.cap == 256 * MIB, 10, "the cap")
            # 40 M values: the round's buffers (3 x 160 MB) do not fit in 256 MB
            vec = np.ones(40_000_000, dtype=np.float32)
            rss = psutil.Process().memory_info().rss
            now = time.time()
            res = await node.averaging.average("too-big", vec, close_at=now + 1,
                                               deadline_at=now + 2)
            grown = (psutil.Process().memory_info().rss - rss) / MIB
            assert res.reason.startswith("not averaged: averaging too-big needs 457.8 MB"), \
                res.reason
            assert "256 MB memory cap" in res.reason and res.members == (node.averaging.me,)
            assert grown < 64, f"RSS grew {grown:.0f} MB for a refused round"
            assert node.ctx.memory.used == 0 and node.ctx.memory.refused == 1

        async with trio_villages(tmp_path / "b", 1, participate=True, ram_cap_mb=1024) as \
                (node,):
            monkeypatch.setattr(throughput, "measure_compute",
                                lambda spec, device="cpu", **_: throughput.ComputeSpeed(
                                    400.0, 100.0))
            await trio_wait_for(lambda: node.ctx.memory.cap == 1024 * MIB, 10, "the cap")
            other = node.ctx.memory.reserve(600 * MIB, "other work")  # held by other work
            room = 1024 * MIB - 600 * MIB
            fits = int(room * 0.9) // per_block
            assert fits == 1 < int(1024 * MIB * 0.9) // per_block  # so the cap decides
            await node.settings_service.change({"swarm_serve": True, "swarm_max_blocks": 8,
                                                "swarm_model": "small-lm"})
            await trio_wait_for(lambda: node.swarm.state == "online", 120, "serving")
            start, end = node.swarm.held
            assert end - start == fits
            assert ("1 SWARM block", small.block_bytes()) in node.ctx.memory.held()
            # a batch whose activations do not fit what is left is refused as busy
            x = np.zeros((4, small.seq, small.hidden), dtype=np.float32)
            ask = wire.encode(wire.SwarmRequest(wire.VERSION, "forward", small.name, start,
                                                end, wire.encode_tensor(x)))

            async def answer() -> wire.SwarmAnswer:
                return await node.swarm.answers.answer(ask, "12D3KooWClient")

            assert (await answer()).ok  # room enough
            rest = node.ctx.memory.reserve(node.ctx.memory.room() or 0, "the rest")
            refused = await answer()
            assert not refused.ok and refused.error.startswith(
                "busy: a SWARM forward batch needs"), refused.error
            rest.release()
            other.release()

    run_villages(main, timeout=220)
