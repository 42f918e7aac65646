"""Credit policy and reputation. Pure: receipts and outcomes in, credits and trust out.

Credits: units of a kind x that kind's rate (one table, RATES). A credit event starts pending;
it becomes verified when a sampled check of the work passes, or when GRACE passes without a
challenge; a failed check rejects it with the reason. Conservation: no credit without a
receipt, and the balance is the sum of verified events (property-tested).

Trust: EigenTrust. Each village's local trust in another is the work it received from it and
accepted, normalised; global trust is the stationary vector of t = (1 - a) C^T t + a p, where
p spreads the restart weight over pre-trusted villages (Foundation nodes). Identities that only
trade with each other form a closed set that the walk enters only through the few edges
honest villages give them, so their trust - and the credit it honours - stays near zero.
A running village sees only its own edges; it learns the rest from the trust views other
villages publish (`core.ledger.trust`), read outwards from its anchors, and trusts only what
that walk reaches within TRUST_HOPS steps. Sybil cost: a new identity is on probation (its
pending credit is not honoured) until it has been trusted by others for PROBATION; see
docs/architecture.md for the trade-off.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

RATES = {  # credits per unit
    "swarm": 0.01,        # per sample through one server's span (forward and backward)
    "training": 0.001,    # per training sample accepted into an average
    "averaging": 0.1,     # per averaging round whose slice this village reduced
    "relay": 1e-9,        # per byte relayed (1 credit per GB)
}
GRACE = 600.0           # s: a pending credit no one challenged becomes verified
ALPHA = 0.4             # EigenTrust's restart weight on the pre-trusted villages (bench.sybil:
                        # 0.15 let a ring take 8 % of the credit, 0.4 keeps it under 5 %)
ITERATIONS = 50
PROBATION = 86_400.0    # s an identity's credit stays pending before it counts at all


def credits(kind: str, units: int) -> float:
    return RATES[kind] * units


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    credits: float
    status: str          # "pending", "verified", "rejected"
    created_at: float
    reason: str = ""


def decide(event: Event, now: float, check: bool | None, reason: str = "") -> Event:
    """An event's next state: a check's outcome decides at once (True: verified; False:
    rejected with `reason`); without one, a pending event is verified after GRACE."""
    if event.status != "pending":
        return event
    if check is True:
        return Event(event.id, event.kind, event.credits, "verified", event.created_at)
    if check is False:
        return Event(event.id, event.kind, event.credits, "rejected", event.created_at,
                     reason or "a sampled check failed")
    if now - event.created_at >= GRACE:
        return Event(event.id, event.kind, event.credits, "verified", event.created_at,
                     "no challenge within the grace period")
    return event


def balance(events: Iterable[Event]) -> dict[str, float]:
    """Verified credit by kind (the balance is their sum); pending and rejected apart."""
    out: dict[str, float] = defaultdict(float)
    for e in events:
        if e.status == "verified":
            out[e.kind] += e.credits
    return dict(out)


def global_trust(edges: Mapping[tuple[str, str], float], pretrusted: Iterable[str],
                 alpha: float = ALPHA, iterations: int = ITERATIONS) -> dict[str, float]:
    """EigenTrust. `edges[(i, j)]`: how much work i received from j and accepted (i's local
    trust in j before normalising). Returns each village's global trust (sums to 1)."""
    peers = sorted({p for e in edges for p in e} | set(pretrusted))
    if not peers:
        return {}
    pre = [p for p in peers if p in set(pretrusted)] or peers
    p_vec = {p: (1.0 / len(pre) if p in pre else 0.0) for p in peers}
    out_sum: dict[str, float] = defaultdict(float)
    for (i, _j), w in edges.items():
        if w > 0:
            out_sum[i] += w
    t = dict(p_vec)
    for _ in range(iterations):
        nxt = {p: alpha * p_vec[p] for p in peers}
        dangling = 0.0
        for i in peers:
            if out_sum[i] <= 0:
                dangling += t[i]  # a village that trusts no one defers to the pre-trusted
        for (i, j), w in edges.items():
            if w > 0 and out_sum[i] > 0:
                nxt[j] += (1 - alpha) * t[i] * w / out_sum[i]
        for p in peers:
            nxt[p] += (1 - alpha) * dangling * p_vec[p]
        t = nxt
    return t


def honoured(raw: Mapping[str, float], trust: Mapping[str, float]) -> dict[str, float]:
    """Credit honoured per village: what its receipts say, capped at what its trust justifies
    - the median earnings of the villages trusted at least as much as an average one, scaled
    by this village's trust relative to that average. A village doing real work for trusted
    villages earns trust in proportion, so its cap grows with its work; a ring vouching for
    itself earns only what the few edges into it carry."""
    if not trust:
        return {w: 0.0 for w in raw}
    avg = 1.0 / len(trust)
    trusted = sorted(v for w, v in raw.items() if trust.get(w, 0.0) >= avg)
    ref = trusted[len(trusted) // 2] if trusted else 0.0
    return {w: min(v, ref * trust.get(w, 0.0) / avg) for w, v in raw.items()}


def trusted_peers(scores: Mapping[str, tuple[int, int, str]], pretrusted: Iterable[str],
                  refused: Iterable[str] = (), vouched: Iterable[str] = ()) -> frozenset[str]:
    """The villages this village trusts: the pre-trusted ones, those whose work passed more
    of its own sampled checks than failed (at least one), and those the network's trust
    (`vouched`, from `network_trust`) reaches - less any it refuses for misbehaving, or that
    failed more of its own checks than they passed (its own measurement outranks any word)."""
    bad = set(refused) | {p for p, (ok, failed, _r) in scores.items() if failed > ok}
    good = (set(pretrusted) | set(vouched)
            | {p for p, (ok, failed, _r) in scores.items() if ok > failed})
    return frozenset(good - bad)


TRUST_FLOOR = 1e-4  # global trust a village needs to be vouched for (see network_trust)
TRUST_HOPS = 2      # and at most this many vouching steps from an anchor


def local_trust(scores: Mapping[str, tuple[int, int, str]], me: str, limit: int
                ) -> dict[str, float]:
    """This village's trust view: EigenTrust's local trust s_ij = checks passed - failed
    (floored at 0), for the `limit` villages with the most, normalised to sum to 1. Only
    sampled checks count: a receipt proves a claim was made, a check that the work was
    right."""
    sat = {p: ok - failed for p, (ok, failed, _r) in scores.items() if ok > failed and p != me}
    top = sorted(sat.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    total = sum(w for _p, w in top)
    return {p: w / total for p, w in top} if total > 0 else {}


def next_views(views: Mapping[str, Mapping[str, float]], anchors: Iterable[str],
               tried: Iterable[str], budget: int) -> list[str]:
    """Whose trust views to read next: the anchors first, then the villages the views read
    so far vouch for, most-vouched first - a breadth-first walk out from the anchors that
    never reads a view nobody we reach vouches for (a ring of strangers vouching for each
    other is never even read)."""
    done = set(tried)
    weight: dict[str, float] = defaultdict(float)
    for p in anchors:
        if p not in done:
            weight[p] = float("inf")
    for view in views.values():
        for p, w in view.items():
            if p not in done:
                weight[p] += w
    return sorted(weight, key=lambda p: (-weight[p], p))[:max(0, budget)]


def network_trust(me: str, views: Mapping[str, Mapping[str, float]], anchors: Iterable[str],
                  floor: float = TRUST_FLOOR, hops: int = TRUST_HOPS
                  ) -> tuple[dict[str, float], frozenset[str]]:
    """EigenTrust over the trust views read (`views[i][j]`: i's local trust in j, this
    village's own included), restarting at the anchors (the pre-trusted villages and this
    one). Returns global trust and the villages it vouches for: global trust >= `floor`
    and at most `hops` vouching steps from an anchor (whose work a village we trust checked,
    or one it vouches for).

    The hop bound is what stops amplification: a closed ring keeps whatever trust flows into
    it (it has no edges out), so one member that did checked work for an honest village
    would otherwise lift every identity the ring names over the floor. With the bound, that
    member is vouched for (its work was checked), the identities only it vouches for are
    three steps out, and are not."""
    edges = {(i, j): w for i, view in views.items() for j, w in view.items()
             if i != j and w > 0}
    roots = {*anchors, me}
    trust = global_trust(edges, roots)
    step: dict[str, int] = {p: 0 for p in roots}
    frontier = set(roots)
    for depth in range(1, hops + 1):
        frontier = {j for i in frontier for j, w in views.get(i, {}).items()
                    if w > 0 and j not in step}
        for j in frontier:
            step[j] = depth
    return trust, frozenset(p for p, t in trust.items()
                            if t >= floor and p != me and p in step)


STRANGER_SHARE = 0.5  # of a server's queue, what villages it does not trust may fill


def queue_room(peer: str, trusted: frozenset[str], queue_max: int) -> int:
    """How many queued requests a server still takes one more from `peer`: all of its queue
    for a village it trusts (or when it trusts none yet), STRANGER_SHARE of it for others -
    strangers cannot crowd out the villages whose work has proven good."""
    if not trusted or peer in trusted:
        return queue_max
    return max(1, int(queue_max * STRANGER_SHARE))


def honoured_credit(verified_by_consumer: Mapping[str, float], trusted: frozenset[str]
                    ) -> float:
    """Verified credit earned from villages this village trusts: what a network that weighs
    receipts by trust (EigenTrust anchored on pre-trusted villages and verified work) would
    honour of it; credit from villages nobody vouches for - a ring paying itself - is not."""
    return sum(c for peer, c in verified_by_consumer.items() if peer in trusted)
