"""What crosses the thread boundary: frozen snapshots and typed events. Pure data.

The app (any thread) reads `NodeSnapshot`s and receives `NodeEvent`s; nothing live, no string
event names. `seq` grows by one with every published snapshot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

from core.names import display_name
from core.personas.model import Persona
from core.settings_schema import Settings


class NodeState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


@dataclass(frozen=True)
class PeerView:
    peer_id: str
    address: str
    rtt_ms: float | None = None
    via: str = "direct"  # "direct", "relayed", or "direct+relayed" (hole punched, relay kept)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # "running", "restarting", "stopped"
    error: str = ""
    restarts: int = 0


@dataclass(frozen=True)
class GovernorStatus:
    may_compute: bool = False
    rule: str = ""  # what stops compute: participation|pause|battery|schedule|idle
    reason: str = ""  # plain words
    threads: int = 0
    duty_cycle: float = 0.0
    cpu_share: float = 0.0  # target share of the machine, 0..1
    notes: tuple[str, ...] = ()
    hot_gpus: tuple[int, ...] = ()  # GPUs paused above the temperature ceiling
    uses_gpu: bool = False  # the tier's work runs on a GPU


@dataclass(frozen=True)
class ComputeStatus:
    job_running: bool = False  # the synthetic "test my limits" job
    threads_running: int = 0
    progress: int = 0  # pieces of governed work done
    last_progress_at: float | None = None  # wall clock
    parked_since: float | None = None  # wall clock: when governed work last stopped
    last_test: str = ""  # outcome of the last "test my limits", in words


@dataclass(frozen=True)
class VillageView:
    """A village known from its signed DHT record (never an expired one)."""

    peer_id: str
    tier: str
    services: tuple[str, ...]
    region: str
    personas: tuple[str, ...]
    gardener_online: bool | None  # at the computer now; None: not measured
    reachability: str  # "direct" or "relay"
    issued_at: float
    expires_at: float
    bandwidth: str = "not-measured"  # its measured upload, as a category
    agent_memory_mb: int | None = None  # memory free for agents; None: not measured
    chosen_name: str = ""  # the name its gardener chose, as its record says (sanitised)
    open_personas: tuple[tuple[str, str], ...] = ()  # (id, name): open to a conversation now

    @property
    def name(self) -> str:
        """How the gardener sees it named (core.names.display_name)."""
        return display_name(self.peer_id, self.chosen_name)


def live_villages(villages: tuple[VillageView, ...], now: float) -> tuple[VillageView, ...]:
    """The villages whose records have not expired as of `now`."""
    return tuple(v for v in villages if v.expires_at > now)


@dataclass(frozen=True)
class HealthAggregate:
    """Village health averaged over many villages (Moshpit), with how it was made."""

    means: tuple[tuple[str, float], ...] = ()   # field -> mean, plain units
    villages: float = 0.0                        # estimated villages (0: not estimated)
    uncertainty: float = 1.0                     # relative
    members_last_round: int = 0
    rounds: int = 0
    at: float = 0.0                              # wall clock

    def mean(self, name: str) -> float:
        return dict(self.means).get(name, 0.0)


@dataclass(frozen=True)
class TelemetryView:
    local: tuple[tuple[str, float], ...] = ()
    regional: HealthAggregate | None = None
    network: HealthAggregate | None = None
    error: str = ""


@dataclass(frozen=True)
class TrainingView:
    """One training project as this village sees it."""

    project: str
    title: str
    opted_in: bool
    running: bool
    status: str                  # plain words: "training", "paused by rule: …", …
    rule: str                    # the rule asked for
    rule_used: str = ""          # last step's (a fallback says why in rule_note)
    rule_note: str = ""
    epoch: int = 0
    samples_contributed: int = 0
    samples_per_second: float = 0.0
    peers: int = 0               # other villages training it, from their progress
    last_members: int = 0
    accuracy: float | None = None
    error: str = ""
    device: str = ""             # where it trains, and why ("on the CPU: ...")
    checks_passed: int = 0       # others' updates this village trained again: as claimed
    checks_failed: int = 0       # ... and not


@dataclass(frozen=True)
class SwarmView:
    """What the gardener sees of block serving."""

    serving: bool
    state: str            # off, measuring, joining, online, cannot-serve
    status: str           # plain words
    model: str = ""
    start: int = 0
    end: int = 0          # exclusive; start == end: no blocks
    throughput: float = 0.0       # samples/s advertised through the whole span
    compute_forward: float = 0.0  # samples/s one block computes here, unthrottled
    compute_train: float = 0.0
    requests_last_hour: int = 0
    refused: int = 0
    queue: int = 0
    swarm_servers: int = 0
    swarm_min_throughput: float = 0.0
    device: str = ""      # where the blocks run, and why
    # training through the swarm (this village's data, the swarm's blocks)
    train_state: str = "off"     # off, starting, waiting, training, cannot-train, stopped
    train_status: str = ""
    train_loss: float | None = None       # moving average of the training loss
    held_out_loss: float | None = None    # on held-out sequences
    chance_loss: float | None = None      # an untrained model's
    train_samples_per_s: float = 0.0
    train_micro_batches: int = 0


@dataclass(frozen=True)
class ConversationView:
    id: str
    persona: str
    partners: tuple[str, ...]        # "persona@village" of the others
    entries: int
    messages: int
    heads: int
    last_checkpoint: int             # entries in the last final checkpoint (0: none yet)
    equivocators: tuple[str, ...]
    error: str
    transcript: tuple[tuple[str, str], ...]  # (speaker, text), the latest 50
    stopped: bool = False            # the gardener stopped our persona in it
    finished: bool = False           # our persona said all it will say


@dataclass(frozen=True)
class CreditEvent:
    kind: str
    credits: float
    status: str          # pending, verified, rejected
    reason: str
    at: float
    peer: str


@dataclass(frozen=True)
class UpdateView:
    """The update check (off by default): what the last check found."""

    status: str = "off"  # "off", "waiting", "available", "current", "refused", "unreachable"
    text: str = ""  # one sentence for the gardener
    version: str = ""  # the release the manifest offers
    checked_at: float = 0.0  # wall-clock seconds; 0: never


@dataclass(frozen=True)
class CreditsView:
    """The village's ledger, as the gardener sees it."""

    running: bool = False
    paused: str = ""                       # why crediting is paused ("" when it is not)
    balance: float = 0.0                   # verified credit
    honoured: float = 0.0                  # of it, earned from villages this one trusts
    trusted: int = 0                       # villages this one trusts (pre-trusted, checked
                                           # here, or vouched for by the network's trust)
    pending: float = 0.0
    rejected: float = 0.0
    today: float = 0.0
    this_week: float = 0.0
    last_hour: float = 0.0                 # verified credit earned in the last hour
    by_kind: tuple[tuple[str, float], ...] = ()
    history: tuple[tuple[str, float], ...] = ()   # (day, verified credit), oldest first
    events: tuple[CreditEvent, ...] = ()          # newest first
    receipts: int = 0
    rates: tuple[tuple[str, float], ...] = ()     # credits per unit, by kind
    # service levels: what this village stakes, the verified credit its proof shows, what
    # rulings took from it and what its challenges won or cost; the villages whose work its
    # own checks reached, and how those checks came out
    stake: float = 0.0
    stake_backing: float = 0.0
    slashed: float = 0.0
    challenges: float = 0.0
    checked_villages: int = 0
    checks_passed: int = 0
    checks_failed: int = 0
    checks: tuple[tuple[str, int, int], ...] = ()  # (village, passed, failed), most first


@dataclass(frozen=True)
class UsageView:
    """What the node process uses now (against the gardener's limits)."""

    cpu_percent: float = 0.0   # of the whole machine (all cores = 100)
    rss_mb: float = 0.0
    upload_kbps: float = 0.0   # kB/s over the last second or so
    download_kbps: float = 0.0
    reserved_mb: float = 0.0   # held for the network's work within the RAM cap (core.memory)
    memory_refusal: str = ""   # the last work the RAM cap refused, in words
    at: float = 0.0            # wall clock


@dataclass(frozen=True)
class ActivityView:
    """What Grove did on this computer (core.activity): measured, summed per hour."""

    measured: bool = False
    cpu_seconds_today: float = 0.0   # processor time of the node process (all cores)
    cpu_seconds_week: float = 0.0    # the last 7 days
    sent_today: int = 0              # bytes
    received_today: int = 0
    sent_week: int = 0
    received_week: int = 0
    allowed_seconds_today: float = 0.0  # wall time the network's work was allowed to run
    cpu_hours: tuple[tuple[float, float], ...] = ()  # (hour start, processor hours), 7 days


@dataclass(frozen=True)
class NodeSnapshot:
    seq: int = 0
    state: NodeState = NodeState.STOPPED
    profile: str = ""
    peer_id: str = ""
    listen_addrs: tuple[str, ...] = ()
    peers: tuple[PeerView, ...] = ()
    started_at: float | None = None  # wall-clock seconds
    uptime_s: float = 0.0
    participating: bool = False
    paused_until: float | None = None  # wall-clock seconds
    key_store: str = ""  # a plain sentence: where the village key lives
    key_store_fallback: bool = False
    services: tuple[ServiceStatus, ...] = ()
    notices: tuple[str, ...] = ()  # things the gardener should know (bad settings, …)
    error: str = ""  # why the node failed, when it did
    version: str = ""
    tier: str = ""
    tier_reason: str = ""
    tier_allows: tuple[str, ...] = ()  # services this tier is offered
    hardware: str = ""  # one line: CPU, cores, RAM, GPUs
    governor: GovernorStatus = GovernorStatus()
    compute: ComputeStatus = ComputeStatus()
    villages: tuple[VillageView, ...] = ()  # from the DHT; read through `live_villages`
    dht_peers: int = 0  # routing-table size
    record_acks: int = 0  # peers that acknowledged our last published record
    relay_hop: bool = False  # serving as a circuit relay (`grove relay`)
    reachability: str = "unknown"  # "direct", "relay-only", "unreachable", "offline", "unknown"
    reachability_detail: str = ""  # one sentence, with the fix when there is one
    relays: tuple[str, ...] = ()  # relays holding a reservation for us
    telemetry: TelemetryView = TelemetryView()
    settings: Settings | None = None  # in effect now (file + this run's overrides)
    usage: UsageView = UsageView()
    personas: tuple[Persona, ...] = ()
    training: tuple[TrainingView, ...] = ()
    swarm: SwarmView = SwarmView(False, "off", "")
    credits: CreditsView = CreditsView()
    conversations: tuple[ConversationView, ...] = ()
    update: UpdateView = UpdateView()
    activity: ActivityView = ActivityView()

    @property
    def errors(self) -> tuple[str, ...]:
        out = [f"{s.name}: {s.error}" for s in self.services if s.error]
        if self.error:
            out.insert(0, self.error)
        return tuple(out)

    def uptime(self, now: float | None = None) -> float:
        """Seconds since the node started, as of `now` (wall clock)."""
        if self.started_at is None or self.state is not NodeState.RUNNING:
            return 0.0
        now = time.time() if now is None else now
        return max(0.0, now - self.started_at)

    def is_paused(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self.paused_until is not None and self.paused_until > now


@dataclass(frozen=True)
class NodeEvent:
    at: float = field(default=0.0, kw_only=True)  # wall-clock seconds


@dataclass(frozen=True)
class PeerConnected(NodeEvent):
    peer_id: str
    address: str


@dataclass(frozen=True)
class PeerDisconnected(NodeEvent):
    peer_id: str


@dataclass(frozen=True)
class ServiceFailed(NodeEvent):
    service: str
    error: str
    restart_in: float


@dataclass(frozen=True)
class ParticipationChanged(NodeEvent):
    participating: bool


@dataclass(frozen=True)
class PauseChanged(NodeEvent):
    paused_until: float | None


@dataclass(frozen=True)
class SettingsChanged(NodeEvent):
    fields: tuple[str, ...]


@dataclass(frozen=True)
class NodeStopped(NodeEvent):
    reason: str


def short_id(peer_id: str) -> str:
    return peer_id if len(peer_id) <= 12 else f"{peer_id[:6]}…{peer_id[-4:]}"


def format_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def status_sentence(snap: NodeSnapshot, now: float | None = None) -> str:
    """One plain sentence saying what the village is doing."""
    if snap.state is NodeState.FAILED:
        return f"Stopped by an error: {snap.error}"
    if snap.state in (NodeState.STOPPED, NodeState.STOPPING):
        return "The village is offline."
    if snap.state is NodeState.STARTING:
        return "The village is starting…"
    if snap.is_paused(now):
        until = time.strftime("%H:%M", time.localtime(snap.paused_until))
        return f"Paused until {until}."
    n = len(snap.peers)
    peers = f"{n} peer{'s' if n != 1 else ''}"
    if not snap.participating:
        return f"Online with {peers}; not lending this computer (participation off)."
    return f"Participating with {peers}."


def status_line(snap: NodeSnapshot, now: float | None = None) -> str:
    """The line `grove node` prints every few seconds."""
    stamp = time.strftime("%H:%M:%S", time.localtime(now))
    peers = ",".join(short_id(p.peer_id) for p in snap.peers) or "-"
    line = (f"{stamp} {snap.profile} {short_id(snap.peer_id)} | {snap.state} | "
            f"peers {len(snap.peers)} [{peers}] | up {format_duration(snap.uptime(now))} | "
            f"participate {'on' if snap.participating else 'off'}")
    if snap.tier:
        line += f" | tier {snap.tier}"
    if snap.state is NodeState.RUNNING and snap.reachability != "unknown":
        line += f" | {snap.reachability}"
    net = snap.telemetry.network
    if net is not None and net.villages:
        line += (f" | network ~{net.villages:.0f} villages (±{100 * net.uncertainty:.0f}%), "
                 f"{100 * net.mean('contributing'):.0f}% contributing")
    for t in snap.training:
        if t.opted_in:
            acc = f", test accuracy {100 * t.accuracy:.1f}%" if t.accuracy is not None else ""
            line += f" | training {t.project}: {t.status}, step {t.epoch}{acc}"
    if snap.swarm.state != "off":
        line += f" | swarm: {snap.swarm.status}"
    if snap.credits.paused:
        line += f" | credits: {snap.credits.paused}"
    if snap.state is NodeState.RUNNING and snap.governor.reason:
        line += f" | compute {snap.governor.reason}"
    if snap.errors:
        line += " | errors: " + "; ".join(snap.errors)
    return line


def to_jsonable(obj: object) -> object:
    """Snapshots and events as plain JSON data (for `--json` output)."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, object] = {"type": type(obj).__name__} if isinstance(obj, NodeEvent) \
            else {}
        out.update({f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
        return out
    if isinstance(obj, tuple | list):
        return [to_jsonable(v) for v in obj]
    return obj
