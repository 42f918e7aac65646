"""The four questions a gardener asks, answered in plain words from one snapshot: is Grove
using my computer right now (and if not, why), how much, what has it done, and is anything
wrong. The Overview page and the web dashboard show these answers; the tray's tooltip takes
the village's own name from here. Pure: callers pass `now`.

Every figure comes from the snapshot (measured by the node) or says "not measured".
"""

from __future__ import annotations

from dataclasses import dataclass

from core import humanize as hz
from core.i18n import QT_TR_NOOP, tr
from core.names import display_name, village_name
from core.snapshot import NodeSnapshot, NodeState

TIER_WORDS = {"cpu": QT_TR_NOOP("processor only"), "consumer-gpu": QT_TR_NOOP("graphics card"),
              "prosumer-gpu": QT_TR_NOOP("large graphics card")}
RULE_WORDS = {"battery": QT_TR_NOOP("on battery"), "schedule": QT_TR_NOOP("outside your schedule"),
              "idle": QT_TR_NOOP("you are using the computer (idle-only)"),
              "program": QT_TR_NOOP("a program you chose is running"),
              "metered": QT_TR_NOOP("the network connection is metered"),
              "fullscreen": QT_TR_NOOP("a full-screen program is running")}


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
        return tr("Nothing needs your attention.") if not self.problems else ""


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
        return "error", tr("Grove stopped because of an error"), snap.error or tr("See the log.")
    if snap.state is NodeState.STARTING:
        return "stopped", tr("Grove is starting"), tr("It joins the network in a few seconds.")
    if snap.state is not NodeState.RUNNING:
        return "stopped", tr("Grove is not running"), tr("Nothing is lent while it is stopped.")
    off = tr("Grove is not using this computer")
    if not snap.participating:
        return "off", off, tr("You switched lending off. Switch it on to help the network.")
    if snap.is_paused(now):
        assert snap.paused_until is not None
        return "not-using", off, tr("Paused until {0}.").format(hz.at_clock(snap.paused_until))
    g = snap.governor
    if not g.may_compute:
        rule = RULE_WORDS.get(g.rule)
        return "not-using", off, (tr("Paused while {0}.").format(tr(rule)) if rule else
                                  (g.reason[:1].upper() + g.reason[1:]) if g.reason
                                  else tr("Waiting for the governor's first decision."))
    limit = tr("up to {0} of the processor").format(hz.percent(g.cpu_share))
    working = _working(snap)
    if working:
        return "using", tr("Grove is using this computer"), \
            tr("{0}, within your limits ({1}).").format(_first_upper(', '.join(working)), limit)
    return "ready", tr("Grove is ready to use this computer"), \
        tr("It may use {0}; no work needs it right now.").format(limit)


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _working(snap: NodeSnapshot) -> list[str]:
    out = []
    if snap.swarm.serving and snap.swarm.state == "online":
        out.append(tr("serving a model"))
    if any(t.opted_in and t.running for t in snap.training):
        out.append(tr("training"))
    if snap.compute.job_running or snap.compute.threads_running:
        out.append(tr("computing"))
    if snap.relay_hop:
        out.append(tr("relaying for other villages"))
    return out


def _usage(snap: NodeSnapshot) -> tuple[tuple[str, str], ...]:
    u, s = snap.usage, snap.settings
    if snap.state is not NodeState.RUNNING or not u.at:
        return ((tr("Processor"), tr(hz.NOT_MEASURED)), (tr("Upload"), tr(hz.NOT_MEASURED)),
                (tr("Download"), tr(hz.NOT_MEASURED)), (tr("Memory"), tr(hz.NOT_MEASURED)))

    def cap(kbps: int) -> str:
        return tr("your limit {0}").format(hz.kbps(kbps)) if kbps else tr("no limit set")

    rows = [(tr("Processor"), tr("{0} of this computer").format(hz.percent(u.cpu_percent / 100))
             + (tr(" (your limit {0} %)").format(s.cpu_share) if s else ""))]
    gpu = dict(snap.telemetry.local).get("gpu_util")
    if snap.governor.uses_gpu:
        rows.append((tr("Graphics card"), f"{hz.percent(gpu)} busy" if gpu is not None
                     else tr(hz.NOT_MEASURED)))
    rows += [(tr("Upload"),
        f"{hz.kbps(u.upload_kbps)}" + (f" ({cap(s.upload_kbps)})" if s else "")),
             (tr("Download"), f"{hz.kbps(u.download_kbps)}"
              + (f" ({cap(s.download_kbps)})" if s else "")),
             (tr("Memory"), hz.nbytes(u.rss_mb * 2**20)
              + (tr(" (your limit for the network's work {0:,} MB)").format(
                      s.ram_cap_mb) if s else ""))]
    return tuple(rows)


def _done(snap: NodeSnapshot, *, today: bool) -> str:
    a, c = snap.activity, snap.credits
    parts = []
    if a.measured:
        cpu = a.cpu_seconds_today if today else a.cpu_seconds_week
        sent = a.sent_today if today else a.sent_week
        got = a.received_today if today else a.received_week
        parts.append(tr("{0} of processor time, {1} sent, {2} received").format(
                hz.hours(cpu), hz.nbytes(sent), hz.nbytes(got)))
    else:
        parts.append(tr("processor time {0}").format(tr(hz.NOT_MEASURED)))
    if c.running:
        parts.append(tr("{0} earned").format(hz.credits(c.today if today else c.this_week)))
    else:
        parts.append(tr("credits {0}").format(tr(hz.NOT_MEASURED)))
    return "; ".join(parts)


def _worked_for(snap: NodeSnapshot, now: float) -> str:
    if not snap.credits.running:
        return tr(hz.NOT_MEASURED)
    since = hz.day_start(now)
    peers = sorted({e.peer for e in snap.credits.events
                    if e.at >= since and e.peer and e.status != "rejected"})
    if not peers:
        return tr("No village has signed for work today yet.")
    names = {v.peer_id: v.name for v in snap.villages}
    shown = [names.get(p) or village_name(p) for p in peers[:3]]
    more = tr(" and {0}").format(hz.plural(len(peers) - 3, "other")) if len(peers) > 3 else ""
    return tr("{0} today: {1}{2}.").format(hz.plural(len(peers), 'village'), ', '.join(shown), more)


def _problems(snap: NodeSnapshot) -> tuple[str, ...]:
    out = list(snap.errors)
    if snap.state is NodeState.RUNNING:
        if snap.reachability in ("relay-only", "unreachable"):
            out.append(snap.reachability_detail or tr("Other villages cannot reach this one."))
        if snap.credits.paused:
            out.append(tr("Crediting is paused: {0}").format(snap.credits.paused))
    if snap.update.status == "available":
        out.append(snap.update.text)
    out += [n for n in snap.notices if n not in out]
    return tuple(out)


def _network(snap: NodeSnapshot, now: float) -> str:
    if snap.state is not NodeState.RUNNING:
        return tr("Not connected.")
    net = snap.telemetry.network or snap.telemetry.regional
    size = (tr("the network holds {0}").format(
            hz.estimate(net.villages, net.uncertainty, 'village'))
            if net and net.villages else tr("the network's size is not measured yet"))
    return tr("Connected to {0}; {1}.").format(hz.plural(len(snap.peers), 'village'), size)
