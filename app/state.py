"""What the tray shows for a snapshot, and which notifications it raises. Pure: no Qt, no
clocks (callers pass `now`), so every case is unit-tested."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from core import humanize as hz
from core.glance import own_name
from core.i18n import QT_TR_NOOP, tr
from core.snapshot import NodeSnapshot, NodeState, status_sentence

PAUSING_RULES = {"battery": QT_TR_NOOP("on battery"), "schedule": QT_TR_NOOP("outside "
                                                                             "your schedule"),
                 "idle": QT_TR_NOOP("the computer is in use (idle-only)"),
                 "program": QT_TR_NOOP("a program you chose is running"),
                 "metered": QT_TR_NOOP("the network connection is metered")}


@dataclass(frozen=True)
class TrayState:
    icon: str  # one of app.icons.STATES
    tooltip: str
    headline: str = ""  # the first line of the tooltip, for notifications


def _peers(snap: NodeSnapshot) -> str:
    return f"{hz.plural(len(snap.peers), 'other village')}"


def _name_line(snap: NodeSnapshot) -> str:
    """The tooltip's last line: this village's name and whom it is connected to."""
    name = own_name(snap)
    return (f"{name}, " if name else "") + tr("connected to {0}").format(_peers(snap))


def credits_line(snap: NodeSnapshot) -> str:
    """The tooltip's credits line, from the village's ledger (what the Credits page shows);
    "not measured" while the ledger cannot say."""
    c = snap.credits
    if not c.running:
        return tr("credits: not measured ({0})").format(c.paused or 'the ledger is not open')
    line = tr("credits: {0} earned today").format(hz.credits(c.today))
    if c.pending:
        line += tr(", {0} pending").format(hz.credits(c.pending))
    line += tr("; balance {0}").format(hz.credits(c.balance))
    return line + (tr(" (crediting paused: {0})").format(c.paused) if c.paused else "")


def tray_state(snap: NodeSnapshot, now: float) -> TrayState:
    """The icon and tooltip for `snap`; never green while something is wrong."""
    icon, line = _icon_and_line(snap, now)
    return TrayState(icon, tr("Grove: {0}\n{1}\n{2}").format(
            line, credits_line(snap), _name_line(snap)), line)


def _icon_and_line(snap: NodeSnapshot, now: float) -> tuple[str, str]:
    sentence = status_sentence(snap, now)
    if snap.state is NodeState.FAILED or snap.errors:
        return "error", tr("needs attention - ") + (snap.errors[0] if snap.errors else sentence)
    if snap.state is not NodeState.RUNNING:
        return "offline", sentence
    if not snap.participating:
        return "off", sentence
    if snap.is_paused(now):
        return "paused", sentence
    g = snap.governor
    if g.rule in PAUSING_RULES:
        return "paused", tr("paused by a rule: {0}.").format(tr(PAUSING_RULES[g.rule]))
    if g.uses_gpu and g.hot_gpus:
        gpus = ", ".join(str(i) for i in g.hot_gpus)
        return "paused", tr("paused by a rule: GPU {0} above your temperature limit.").format(gpus)
    if not snap.peers:
        return "offline", tr("participating, but no other village can be reached yet.")
    if snap.reachability == "unreachable":
        return "offline", snap.reachability_detail or tr("other villages cannot reach this one.")
    if snap.compute.threads_running or snap.compute.job_running:
        return "contributing", tr("contributing now, with {0}.").format(_peers(snap))
    if snap.reachability == "relay-only":
        return "relay", ("participating through a relay (relay-only: slower). "
                         + snap.reachability_detail).strip()
    return "idle", tr("participating with {0}; no work right now.").format(_peers(snap))


# -- notifications -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Notice:
    kind: str   # paused | relay | error | credits
    title: str
    text: str


@dataclass
class Notifier:
    """Raises a notice when the node enters a state the gardener should hear about, at most
    once per `per_kind_s` per kind and `max_per_hour` in all."""

    per_kind_s: float = 15 * 60
    max_per_hour: int = 4
    enabled: bool = True
    _last_icon: str = ""
    _last_errors: tuple[str, ...] = ()
    _sent_at: dict[str, float] = field(default_factory=dict)
    _recent: deque[float] = field(default_factory=deque)
    _told_update: set[str] = field(default_factory=set)

    def observe(self, snap: NodeSnapshot, now: float) -> list[Notice]:
        st = tray_state(snap, now)
        out: list[Notice] = []
        if st.icon != self._last_icon:
            if st.icon == "paused" and snap.governor.rule != "pause":  # not when you asked
                if not snap.is_paused(now):
                    out.append(Notice("paused", tr("Grove paused"), st.headline))
            elif st.icon == "relay":
                out.append(Notice("relay", tr("Grove reaches the network through a relay"),
                                  snap.reachability_detail or st.headline))
        if snap.update.status == "available" and snap.update.version not in self._told_update:
            self._told_update.add(snap.update.version)
            out.append(Notice("update", tr("A Grove update is available"), snap.update.text))
        new_errors = tuple(e for e in snap.errors if e not in self._last_errors)
        if new_errors:
            out.append(Notice("error", tr("Grove needs your attention"), new_errors[0]))
        self._last_icon, self._last_errors = st.icon, snap.errors
        return [n for n in out if self._allow(n, now)]

    def _allow(self, notice: Notice, now: float) -> bool:
        if not self.enabled:
            return False
        while self._recent and self._recent[0] <= now - 3600:
            self._recent.popleft()
        last = self._sent_at.get(notice.kind)
        if (last is not None and now - last < self.per_kind_s) or \
                len(self._recent) >= self.max_per_hour:
            return False
        self._sent_at[notice.kind] = now
        self._recent.append(now)
        return True


# -- village health over time (for the chart) ---------------------------------------------------
@dataclass
class HealthHistory:
    """One point per telemetry round: (wall time, villages estimate, % contributing)."""

    limit: int = 288  # a day of 5-minute rounds
    points: deque[tuple[float, float, float]] = field(default_factory=deque)

    def observe(self, snap: NodeSnapshot) -> bool:
        net = snap.telemetry.network or snap.telemetry.regional
        if net is None or not net.at or net.villages <= 0:  # 0: not estimated that round
            return False
        if self.points and self.points[-1][0] >= net.at:
            return False
        share = min(1.0, max(0.0, net.mean("contributing")))  # privacy noise can pass 0..1
        self.points.append((net.at, net.villages, 100 * share))
        while len(self.points) > self.limit:
            self.points.popleft()
        return True


def describe_age(seconds: float) -> str:
    if seconds < 90:
        return tr("{0:.0f} s ago").format(seconds)
    if seconds < 5400:
        return tr("{0:.0f} min ago").format(seconds / 60)
    return tr("{0:.1f} h ago").format(seconds / 3600)


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))
