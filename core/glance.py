"""The four questions a gardener asks, answered in plain words from one snapshot: is Grove
using my computer right now (and if not, why), how much, what has it done, and is anything
wrong. The Overview page and the web dashboard show these answers; the tray's tooltip takes
the village's own name from here. Pure: callers pass `now`.

Every figure comes from the snapshot (measured by the node) or says "not measured".
"""

from __future__ import annotations

from dataclasses import dataclass

from core import humanize as hz
from core.names import display_name, village_name
from core.snapshot import NodeSnapshot, NodeState

TIER_WORDS = {"cpu": "processor only", "consumer-gpu": "graphics card",
              "prosumer-gpu": "large graphics card"}
RULE_WORDS = {"battery": "on battery", "schedule": "outside your schedule",
              "idle": "you are using the computer (idle-only)",
              "program": "a program you chose is running",
              "metered": "the network connection is metered",
              "fullscreen": "a full-screen program is running"}


@dataclass(frozen=True)
class Glance:
    state: str                # using | ready | not-using | off | stopped | error
    headline: str             # "Grove is using this computer"
    why: str                  # one sentence: why, or within what
    usage: tuple[tuple[str, str], ...]   # (what, "23 % of this computer (your limit 50 %)")
    today: str                # what it did today
    week: str                 # ... in the last 7 days
    worked_for: str           # for which villages (from the ledger's credit events)
    problems: tuple[str, ...]  # plain sentences; empty: nothing wrong
    network: str              # connected villages and the network's measured size
    name: str                 # this village's name

    @property
    def all_well(self) -> str:
        return "Nothing needs your attention." if not self.problems else ""


def glance(snap: NodeSnapshot, now: float) -> Glance:
    state, headline, why = _using(snap, now)
    return Glance(state, headline, why, _usage(snap), _done(snap, today=True),
                  _done(snap, today=False), _worked_for(snap, now), _problems(snap),
                  _network(snap, now), own_name(snap))


def own_name(snap: NodeSnapshot) -> str:
    chosen = snap.settings.village_name if snap.settings is not None else ""
    return display_name(snap.peer_id, chosen, own=True) if snap.peer_id else ""


def _using(snap: NodeSnapshot, now: float) -> tuple[str, str, str]:
    if snap.state is NodeState.FAILED:
        return "error", "Grove stopped because of an error", snap.error or "See the log."
    if snap.state is NodeState.STARTING:
        return "stopped", "Grove is starting", "It joins the network in a few seconds."
    if snap.state is not NodeState.RUNNING:
        return "stopped", "Grove is not running", "Nothing is lent while it is stopped."
    off = "Grove is not using this computer"
    if not snap.participating:
        return "off", off, "You switched lending off. Switch it on to help the network."
    if snap.is_paused(now):
        assert snap.paused_until is not None
        return "not-using", off, f"Paused until {hz.at_clock(snap.paused_until)}."
    g = snap.governor
    if not g.may_compute:
        rule = RULE_WORDS.get(g.rule)
        return "not-using", off, (f"Paused while {rule}." if rule else
                                  (g.reason[:1].upper() + g.reason[1:]) if g.reason
                                  else "Waiting for the governor's first decision.")
    limit = f"up to {hz.percent(g.cpu_share)} of the processor"
    working = _working(snap)
    if working:
        return "using", "Grove is using this computer", \
            f"{', '.join(working).capitalize()}, within your limits ({limit})."
    return "ready", "Grove is ready to use this computer", \
        f"It may use {limit}; no work needs it right now."


def _working(snap: NodeSnapshot) -> list[str]:
    out = []
    if snap.swarm.serving and snap.swarm.state == "online":
        out.append("serving a model")
    if any(t.opted_in and t.running for t in snap.training):
        out.append("training")
    if snap.compute.job_running or snap.compute.threads_running:
        out.append("computing")
    if snap.relay_hop:
        out.append("relaying for other villages")
    return out


def _usage(snap: NodeSnapshot) -> tuple[tuple[str, str], ...]:
    u, s = snap.usage, snap.settings
    if snap.state is not NodeState.RUNNING or not u.at:
        return (("Processor", hz.NOT_MEASURED), ("Upload", hz.NOT_MEASURED),
                ("Download", hz.NOT_MEASURED), ("Memory", hz.NOT_MEASURED))

    def cap(kbps: int) -> str:
        return f"your limit {hz.kbps(kbps)}" if kbps else "no limit set"

    rows = [("Processor", f"{hz.percent(u.cpu_percent / 100)} of this computer"
             + (f" (your limit {s.cpu_share} %)" if s else ""))]
    gpu = dict(snap.telemetry.local).get("gpu_util")
    if snap.governor.uses_gpu:
        rows.append(("Graphics card", f"{hz.percent(gpu)} busy" if gpu is not None
                     else hz.NOT_MEASURED))
    rows += [("Upload", f"{hz.kbps(u.upload_kbps)}" + (f" ({cap(s.upload_kbps)})" if s else "")),
             ("Download", f"{hz.kbps(u.download_kbps)}"
              + (f" ({cap(s.download_kbps)})" if s else "")),
             ("Memory", hz.nbytes(u.rss_mb * 2**20)
              + (f" (your limit for the network's work {s.ram_cap_mb:,} MB)" if s else ""))]
    return tuple(rows)


def _done(snap: NodeSnapshot, *, today: bool) -> str:
    a, c = snap.activity, snap.credits
    parts = []
    if a.measured:
        cpu = a.cpu_seconds_today if today else a.cpu_seconds_week
        sent = a.sent_today if today else a.sent_week
        got = a.received_today if today else a.received_week
        parts.append(f"{hz.hours(cpu)} of processor time, {hz.nbytes(sent)} sent, "
                     f"{hz.nbytes(got)} received")
    else:
        parts.append(f"processor time {hz.NOT_MEASURED}")
    if c.running:
        parts.append(f"{hz.credits(c.today if today else c.this_week)} earned")
    else:
        parts.append(f"credits {hz.NOT_MEASURED}")
    return "; ".join(parts)


def _worked_for(snap: NodeSnapshot, now: float) -> str:
    if not snap.credits.running:
        return hz.NOT_MEASURED
    since = hz.day_start(now)
    peers = sorted({e.peer for e in snap.credits.events
                    if e.at >= since and e.peer and e.status != "rejected"})
    if not peers:
        return "No village has signed for work today yet."
    names = {v.peer_id: v.name for v in snap.villages}
    shown = [names.get(p) or village_name(p) for p in peers[:3]]
    more = f" and {hz.plural(len(peers) - 3, 'other')}" if len(peers) > 3 else ""
    return f"{hz.plural(len(peers), 'village')} today: {', '.join(shown)}{more}."


def _problems(snap: NodeSnapshot) -> tuple[str, ...]:
    out = list(snap.errors)
    if snap.state is NodeState.RUNNING:
        if snap.reachability in ("relay-only", "unreachable"):
            out.append(snap.reachability_detail or "Other villages cannot reach this one.")
        if snap.credits.paused:
            out.append(f"Crediting is paused: {snap.credits.paused}")
    if snap.update.status == "available":
        out.append(snap.update.text)
    out += [n for n in snap.notices if n not in out]
    return tuple(out)


def _network(snap: NodeSnapshot, now: float) -> str:
    if snap.state is not NodeState.RUNNING:
        return "Not connected."
    net = snap.telemetry.network or snap.telemetry.regional
    size = (f"the network holds {hz.estimate(net.villages, net.uncertainty, 'village')}"
            if net and net.villages else "the network's size is not measured yet")
    return f"Connected to {hz.plural(len(snap.peers), 'village')}; {size}."
