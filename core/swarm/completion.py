"""A completion at a service level: what the gateway serves to people outside the network.

Greedy, one character at a time, each a full forward through the swarm at the chosen level
(`core.swarm.assurance`): every hop's answer carries its server's signed commitment and is
checked as the level says, which the cached attention of `SwarmClient.generate` cannot offer
(its hops are not recomputable one at a time). The answer comes with a receipt: which villages
served which blocks, how many commitments were verified, and what the checks found.
"""

from __future__ import annotations

import copy
from typing import Any

import trio

from core.swarm import text as codec
from core.swarm.client import PipelineFailed, SwarmClient


class CompletionFailed(Exception):
    """The swarm could not complete the text at the level asked; `str()` says why."""


async def complete(client: SwarmClient, ends: tuple[Any, Any], prompt: str, max_tokens: int
                   ) -> dict[str, Any]:
    """Continue `prompt` by up to `max_tokens` characters through the swarm with `client`
    (its level) and the embedding and head `ends`. TextNotReadable for text the model cannot
    read; CompletionFailed when the swarm cannot serve it at that level."""
    import torch

    spec, level = client.spec, client.level
    tokens = codec.encode(prompt, spec.vocab)
    room = spec.seq - len(tokens)
    if room < 1:
        raise codec.TextNotReadable(f"{spec.name} reads at most {spec.seq - 1} characters "
                                    f"before the ones it adds ({len(tokens)} given).",
                                    "Give a shorter prompt.")
    wanted = max(1, min(max_tokens, room))
    embed, head = (copy.deepcopy(p) for p in ends)
    await client.refresh()
    t0 = trio.current_time()
    served: dict[tuple[int, int, str], int] = {}
    new: list[int] = []
    try:
        for _ in range(wanted):
            with torch.no_grad():
                x = embed(torch.tensor([tokens + new])).numpy()
            out, hops = await client.forward(x)
            for h in hops:
                key = (h.start, h.end, h.server.peer_id)
                served[key] = served.get(key, 0) + 1
            with torch.no_grad():
                logits = head(torch.from_numpy(out))[0, -1]
            new.append(int(torch.argmax(logits)))
    except PipelineFailed as e:
        raise CompletionFailed(f"the swarm could not serve it at the {level} level: {e}"
                               ) from None
    s = client.stats
    return {
        "model": spec.name, "prompt": prompt, "text": codec.decode(new, spec.vocab),
        "prompt_tokens": len(tokens), "completion_tokens": len(new),
        "seconds": round(trio.current_time() - t0, 3), "level": level,
        "receipt": {
            "served": [{"blocks": [a, b - 1], "village": v, "hops": n}
                       for (a, b, v), n in sorted(served.items())],
            "commitments_verified": s.commitments,
            "checks_passed": s.checks_passed, "checks_failed": s.checks_failed,
            "checks_inconclusive": s.checks_inconclusive,
            "independent_checks": s.independent_checks,
            "disagreements": s.disagreements, "retries": s.retries,
            "banned": list(s.bans)}}
