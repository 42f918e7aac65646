"""The node: one trio loop that owns the libp2p host and every service.

Rules: everything here runs on the node thread (trio). The outside world reaches it only through
`NodeHandle` (core.handle): commands in, frozen snapshots and typed events out. Services are
supervised: a crash restarts that service with backoff and shows as an error in the snapshot.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from core import __version__
from core.averaging.service import AveragingService
from core.commands import (
    AddPersona,
    Average,
    Command,
    Connect,
    Pause,
    Ping,
    Probe,
    RemovePersona,
    Resume,
    RunTestJob,
    SetParticipation,
    StartConversation,
    Stop,
    UpdatePersona,
    UpdateSettings,
)
from core.config import atomic_write, load_settings, save_settings
from core.dht.service import DhtService
from core.discovery import DiscoveryService
from core.errors import NetworkError
from core.governor_service import (
    GovernorService,
    check_limits_against_hardware,
    write_pause_file,
)
from core.identity import KeyStoreInfo, VillageKey, load_or_create_key
from core.ledger.service import LedgerService
from core.lock import ProfileLock
from core.net.bandwidth import Bandwidth
from core.net.host import GroveHost, open_host
from core.net.nat import open_nat_client
from core.net.relay import open_relay_hop
from core.paths import NodePaths, node_paths
from core.peers_file import VILLAGES_FILE
from core.personas.service import PersonaService
from core.personas.talk import ConversationService
from core.probe import PROTOCOL as PROBE_PROTOCOL
from core.probe import probe, serve_probe
from core.reachability import ReachabilityService
from core.release.service import UpdateService
from core.settings_schema import Settings
from core.snapshot import (
    ComputeStatus,
    HealthAggregate,
    NodeEvent,
    NodeSnapshot,
    NodeState,
    ParticipationChanged,
    PauseChanged,
    PeerConnected,
    PeerDisconnected,
    PeerView,
    SettingsChanged,
    SwarmView,
    TelemetryView,
    TrainingView,
    UsageView,
    VillageView,
    to_jsonable,
)
from core.supervisor import Supervisor
from core.swarm.service import SwarmService
from core.telemetry import TelemetryService
from core.testjob import TestJobRunner
from core.training.service import TrainingService
from core.usage import UsageMeter

log = logging.getLogger(__name__)

SNAPSHOT_PERIOD = 0.5  # at most 2 snapshots a second
TRAINING_FILE = "training.json"
SWARM_FILE = "swarm.json"
SETTINGS_POLL = 0.5  # seconds between looks at settings.toml (opt-outs apply within 1 s)
HEARTBEAT_PERIOD = 5.0  # publish at least this often even when nothing changed

ServiceFactory = Callable[["Node"], Callable[[], Awaitable[None]]]


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node needs to start. Build with `NodeConfig.load`."""

    paths: NodePaths
    key: VillageKey
    key_info: KeyStoreInfo
    file_settings: Settings  # what settings.toml holds
    overrides: Mapping[str, Any] = field(default_factory=dict)  # this run only (CLI flags)
    notices: tuple[str, ...] = ()
    extra_services: Mapping[str, ServiceFactory] = field(default_factory=dict)
    seed: int | None = None  # for the node's RNG; None = from the OS

    @property
    def settings(self) -> Settings:
        return self.file_settings.with_changes(**self.overrides)

    def reloaded(self) -> NodeConfig:
        """This config with settings.toml read again (for a restart)."""
        loaded = load_settings(self.paths.settings_file)
        return replace(self, file_settings=loaded.settings, notices=tuple(loaded.messages()))

    @classmethod
    def load(cls, profile: str = "default", *, overrides: Mapping[str, Any] | None = None,
             env: dict[str, str] | None = None, **kw: Any) -> NodeConfig:
        """Paths, settings (never failing on a bad file) and the village key (may raise
        IdentityError). Overrides are validated (SettingsError names the field)."""
        paths = node_paths(profile, env).ensure()
        loaded = load_settings(paths.settings_file)
        key, key_info = load_or_create_key(paths, env)
        overrides = dict(overrides or {})
        loaded.settings.with_changes(**overrides)  # validate now, with a clear error
        return cls(paths, key, key_info, loaded.settings, overrides,
                   tuple(loaded.messages()), **kw)


class Node:
    """Trio-native node. `await node.run(publish, emit, commands)` until stopped."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.file_settings = config.file_settings
        self.settings = config.settings
        self.rng = random.Random(config.seed)
        self.host: GroveHost | None = None
        self.state = NodeState.STARTING
        self.started_at: float | None = None
        self._started_mono = 0.0
        self.paused_until: float | None = None
        self.rtts: dict[str, float] = {}
        self._emit_cb: Callable[[NodeEvent], None] = lambda e: None
        self._settings_changed = trio.Event()
        self.supervisor = Supervisor(self.emit, self.rng)
        self._known_peers: dict[str, str] = {}
        self.misbehaviour: dict[str, int] = {}
        self.relay_hop = False
        self.bandwidth = Bandwidth()
        self.usage = UsageMeter(self.bandwidth)
        self.personas = PersonaService()
        self.governor = GovernorService(self)
        self.test_jobs = TestJobRunner(self)
        self.dht = DhtService(self)
        self.reachability = ReachabilityService(self)
        self.averaging = AveragingService(self)
        self.telemetry = TelemetryService(self)
        self.training = TrainingService(self)
        self.swarm = SwarmService(self)
        self.ledger = LedgerService(self)
        self.conversations = ConversationService(self)
        self.updates = UpdateService(self)
        self._settings_stamp: object = None
        self._seq = 0
        self.discovery: DiscoveryService | None = None

    # -- called by services (node thread) ---------------------------------------------------
    def emit(self, event: NodeEvent) -> None:
        self._emit_cb(replace(event, at=time.time()))

    def record_misbehaviour(self, peer: str, reason: str) -> None:
        """A peer broke a protocol: logged with its id and counted for the reputation layer."""
        self.misbehaviour[peer] = self.misbehaviour.get(peer, 0) + 1
        log.warning("peer %s misbehaved: %s", peer, reason)

    async def wait_settings_changed(self) -> None:
        await self._settings_changed.wait()

    async def wait_for_change(self, timeout: float) -> None:
        """Until the settings or the governor's decision change, or `timeout` passes: what a
        service that starts and stops work by them waits on instead of polling."""
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as wait:
                async def on(waiter: Any) -> None:
                    await waiter()
                    wait.cancel_scope.cancel()

                wait.start_soon(on, self.wait_settings_changed)
                wait.start_soon(on, self.governor.wait_decision_changed)

    def _record_changed(self) -> None:
        """Wake whoever waits on a settings change (the DHT republishes our record)."""
        self._settings_changed.set()
        self._settings_changed = trio.Event()

    # -- the loop ----------------------------------------------------------------------------
    async def run(self, publish: Callable[[NodeSnapshot], None],
                  emit: Callable[[NodeEvent], None],
                  commands: trio.MemoryReceiveChannel[tuple[Command, Any]],
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._emit_cb = emit
        paths = self.config.paths
        with ProfileLock(paths.data_dir / "node.lock", paths.profile), \
                self.personas.opened(paths.data_dir / "personas.db"):
            s = self.settings
            async with open_host(self.config.key.seed, s.listen_host, s.listen_port,
                                 s.max_connections) as host, AsyncExitStack() as stack:
                self.host = host
                host.nat = await stack.enter_async_context(open_nat_client(host))
                host.set_handler(PROBE_PROTOCOL, serve_probe)
                if s.relay_enabled:
                    await stack.enter_async_context(open_relay_hop(
                        host, max_reservations=s.relay_max_reservations,
                        max_circuits=s.relay_max_circuits,
                        circuit_bytes=s.relay_circuit_mb * 2**20,
                        circuit_seconds=s.relay_circuit_minutes * 60))
                    self.relay_hop = True
                    log.info("relay mode: serving circuit relay v2 (hop)")
                self.started_at = time.time()
                self._started_mono = trio.current_time()
                self.state = NodeState.RUNNING
                self._write_runtime_file()
                log.info("village %s listening on %s", host.peer_id, host.listen_addrs())
                try:
                    async with trio.open_nursery() as nursery:
                        self.discovery = DiscoveryService(self)
                        services: dict[str, Callable[[], Awaitable[None]]] = {
                            "discovery": self.discovery.run,
                            "dht": self.dht.run,
                            "reachability": self.reachability.run,
                            "averaging": self.averaging.run,
                            "telemetry": self.telemetry.run,
                            "training": self.training.run,
                            "swarm": self.swarm.run,
                            "ledger": self.ledger.run,
                            "conversations": self.conversations.run,
                            "governor": self.governor.run,
                            "updates": self.updates.run,
                            "settings": self._watch_settings_file,
                        }
                        for name, factory in self.config.extra_services.items():
                            services[name] = factory(self)
                        for name, svc in services.items():
                            nursery.start_soon(self.supervisor.run, name, svc)
                        self._seq += 1
                        publish(replace(self.snapshot(), seq=self._seq))
                        nursery.start_soon(self._publisher, publish)
                        task_status.started(host.peer_id)
                        await self._command_loop(commands, nursery)
                finally:
                    self.state = NodeState.STOPPING
                    self.host = None
                    with trio.CancelScope(shield=True):
                        await self.test_jobs.stop()
                    self._remove_runtime_file()

    async def _command_loop(self, commands: trio.MemoryReceiveChannel[tuple[Command, Any]],
                            nursery: trio.Nursery) -> None:
        """Commands run in the order they came; long ones (a limits test) run beside the
        loop so that a pause sent meanwhile is not kept waiting."""
        async for command, reply in commands:
            if isinstance(command, Stop):
                log.info("stopping: %s", command.reason)
                reply(None, None)
                nursery.cancel_scope.cancel()
                return
            if isinstance(command, RunTestJob | Average):
                nursery.start_soon(self._execute_and_reply, command, reply)
            else:
                await self._execute_and_reply(command, reply)

    async def _execute_and_reply(self, command: Command, reply: Any) -> None:
        try:
            result = await self._execute(command)
        except Exception as e:
            reply(None, e)
        else:
            reply(result, None)

    async def _execute(self, command: Command) -> Any:
        if isinstance(command, SetParticipation):
            await self._change_settings({"participate": command.participate})
            self.emit(ParticipationChanged(participating=command.participate))
            return command.participate
        if isinstance(command, Pause | Resume):
            until = command.until if isinstance(command, Pause) else None
            self.paused_until = until
            self.governor.poke()
            await trio.to_thread.run_sync(write_pause_file, self.governor.pause_file, until)
            self.emit(PauseChanged(paused_until=until))
            return until
        if isinstance(command, RunTestJob):
            return await self.test_jobs.run(command.seconds)
        if isinstance(command, Average):
            return await self.averaging.average(
                command.key, command.vector, close_at=command.close_at,
                deadline_at=command.deadline_at, weight=command.weight,
                max_group=command.max_group, compression=command.compression)
        if isinstance(command, UpdateSettings):
            return await self._change_settings(command.changes)
        if isinstance(command, AddPersona | UpdatePersona | RemovePersona):
            result = await self.personas.apply(command)
            self._record_changed()  # the village record lists the personas
            return result
        if isinstance(command, StartConversation):
            return await self.conversations.start(command.persona_id, list(command.partners),
                                                  command.turns)
        if isinstance(command, Connect):
            assert self.host is not None
            if not command.address.startswith("/"):
                return await self.connect_village(command.address)
            return await self.host.connect(command.address)
        if isinstance(command, Ping):
            assert self.host is not None
            return await self.host.ping(command.peer_id)
        if isinstance(command, Probe):
            assert self.host is not None
            return await probe(self.host, command.peer_id, command.size)
        raise TypeError(f"unknown command {command!r}")

    async def connect_village(self, peer_id: str) -> str:
        """Dial a village by id, at the addresses its signed record gives (circuit addresses
        through its relays first when it is behind a NAT)."""
        assert self.host is not None
        if self.host.is_connected(peer_id):
            return peer_id
        found = self.dht.villages.get(peer_id) or await self.dht.get_village(peer_id, quorum=1)
        if found is None or found.expires_at <= time.time():
            raise NetworkError(f"No record of village {peer_id} in the village network.",
                               "It may be offline; records expire 5 minutes after it stops.")
        reasons = []
        for addr in found.record.addrs:
            try:
                return await self.host.connect(f"{addr}/p2p/{peer_id}", timeout=10)
            except NetworkError as e:
                reasons.append(e.what)
        raise NetworkError(f"Village {peer_id} did not answer at any of its addresses.",
                           "; ".join(reasons))

    async def _change_settings(self, changes: Mapping[str, Any]) -> tuple[str, ...]:
        new_file = self.file_settings.with_changes(**changes)  # SettingsError -> caller
        check_limits_against_hardware(new_file, self.governor.hardware)
        changed = tuple(k for k in changes if getattr(new_file, k) != getattr(
            self.file_settings, k))
        if not changed:
            return ()
        await trio.to_thread.run_sync(save_settings, self.config.paths.settings_file, new_file)
        self._settings_stamp = _stamp(self.config.paths.settings_file)
        self._apply_file_settings(new_file, changed, keep=tuple(changes))
        return changed

    def _apply_file_settings(self, new_file: Settings, changed: tuple[str, ...],
                             keep: tuple[str, ...] = ()) -> None:
        """Take new settings live: every service sees them, the governor re-decides now."""
        self.file_settings = new_file
        self.settings = new_file.with_changes(
            **{k: v for k, v in self.config.overrides.items() if k not in keep})
        self._record_changed()
        self.governor.poke()
        self.emit(SettingsChanged(fields=changed))

    async def _watch_settings_file(self) -> None:
        """settings.toml edited outside the node (`grove limits set`, an editor) is applied
        without a restart."""
        path = self.config.paths.settings_file
        self._settings_stamp = _stamp(path)
        registry = self.config.paths.data_dir / "personas.db"
        personas_stamp = (_stamp(registry), _stamp(f"{registry}-wal"))
        while True:
            await trio.sleep(SETTINGS_POLL)
            now_personas = (_stamp(registry), _stamp(f"{registry}-wal"))
            if now_personas != personas_stamp:  # `grove personas` edited the registry
                personas_stamp = now_personas
                if await self.personas.refresh():
                    self._record_changed()  # the village record lists the personas
            stamp = _stamp(path)
            if stamp == self._settings_stamp:
                continue
            self._settings_stamp = stamp
            loaded = await trio.to_thread.run_sync(load_settings, path)
            self._settings_stamp = _stamp(path)  # a bad file was rewritten
            try:
                check_limits_against_hardware(loaded.settings, self.governor.hardware)
            except Exception as e:
                log.warning("settings.toml: %s; keeping the previous settings", e)
                continue
            changed = tuple(k for k in Settings.__dataclass_fields__
                            if getattr(loaded.settings, k) != getattr(self.file_settings, k))
            if changed:
                log.info("settings.toml changed: %s", ", ".join(changed))
                self._apply_file_settings(loaded.settings, changed)

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot(self) -> NodeSnapshot:
        host = self.host
        peers: tuple[PeerView, ...] = ()
        if host is not None:
            peers = tuple(sorted(
                (PeerView(p.peer_id, p.multiaddr, _ms(p.rtt or self.rtts.get(p.peer_id)),
                          p.kind or "direct")
                 for p in host.peer_links()), key=lambda p: p.peer_id))
        uptime = trio.current_time() - self._started_mono if self.started_at else 0.0
        return NodeSnapshot(
            seq=self._seq,
            state=self.state,
            profile=self.config.paths.profile,
            peer_id=host.peer_id if host else "",
            listen_addrs=tuple(host.listen_addrs()) if host else (),
            peers=peers,
            started_at=self.started_at,
            uptime_s=uptime,
            participating=self.settings.participate,
            paused_until=self.paused_until if self.paused_until and
            self.paused_until > time.time() else None,
            key_store=self.config.key_info.note,
            key_store_fallback=self.config.key_info.is_fallback,
            services=tuple(self.supervisor.status[k] for k in sorted(self.supervisor.status)),
            notices=self.config.notices,
            version=__version__,
            tier=self.governor.tier.tier,
            tier_reason=self.governor.tier.reason,
            tier_allows=self.governor.tier.spec.services,
            hardware=self._hardware_line(),
            governor=self.governor.view(),
            compute=self._compute_status(),
            villages=self._villages(),
            dht_peers=len(self.dht.table) if self.dht.table is not None else 0,
            record_acks=self.dht.put_acks,
            relay_hop=self.relay_hop,
            reachability=self.reachability.current.state,
            reachability_detail=self.reachability.current.detail,
            relays=tuple(sorted(host.nat.reservations)) if host and host.nat else (),
            telemetry=self._telemetry_view(),
            settings=self.settings,
            usage=self.usage.sample(),
            personas=self.personas.current,
            training=self.training.views(self.settings),
            swarm=self.swarm.view(),
            credits=self.ledger.last_view,
            conversations=self.conversations.views(),
            update=self.updates.view,
        )

    def _telemetry_view(self) -> TelemetryView:
        st = self.telemetry.state

        def agg(a: Any) -> HealthAggregate | None:
            if a is None:
                return None
            return HealthAggregate(tuple(sorted(a.means.items())), a.villages, a.uncertainty,
                                   a.members_last_round, a.rounds, a.at)

        return TelemetryView(tuple(sorted(st.local.items())), agg(st.regional),
                             agg(st.network), st.last_error)

    def _villages(self) -> tuple[VillageView, ...]:
        out = []
        for v in self.dht.known_villages(time.time()):
            r = v.record
            relay = any("/p2p-circuit" in a for a in r.addrs)
            out.append(VillageView(r.peer_id, r.tier, tuple(r.services), r.region,
                                   tuple(p.name for p in r.personas), r.gardener_online,
                                   "relay" if relay else "direct", r.issued_at, r.expires_at))
        return tuple(out)

    def _hardware_line(self) -> str:
        hw = self.governor.hardware
        gpus = ", ".join(f"{g.name} ({g.vram_total / 1024**3:.0f} GiB)" for g in hw.nvml.gpus)
        return (f"{hw.cpu_model}, {hw.logical_cores} threads, "
                f"{hw.ram_total / 1024**3:.0f} GiB RAM; " + (gpus or "no GPU"))

    def _compute_status(self) -> ComputeStatus:
        st = self.governor.gate.stats()
        to_wall = time.time() - time.monotonic()
        return ComputeStatus(
            job_running=self.test_jobs.running, threads_running=st.running_threads,
            progress=st.progress,
            last_progress_at=st.last_progress_at + to_wall if st.last_progress_at else None,
            parked_since=st.parked_since + to_wall if st.parked_since else None,
            last_test=self.test_jobs.last_result)

    async def _publisher(self, publish: Callable[[NodeSnapshot], None]) -> None:
        last: NodeSnapshot | None = None
        last_at = -1e9
        last_villages: tuple[VillageView, ...] = ()
        last_training: tuple[TrainingView, ...] = ()
        last_swarm: SwarmView | None = None
        while True:
            snap = self.snapshot()
            self._diff_peers(snap)
            now = trio.current_time()
            if last is None or _content(snap) != _content(last) or now - last_at >= \
                    HEARTBEAT_PERIOD:
                self._seq += 1
                snap = replace(snap, seq=self._seq)
                publish(snap)
                if snap.villages != last_villages:
                    last_villages = snap.villages
                    await trio.to_thread.run_sync(self._write_json, VILLAGES_FILE, snap.villages)
                if snap.training != last_training:
                    last_training = snap.training
                    await trio.to_thread.run_sync(self._write_json, TRAINING_FILE, snap.training)
                if snap.swarm != last_swarm:
                    last_swarm = snap.swarm
                    await trio.to_thread.run_sync(self._write_json, SWARM_FILE, (snap.swarm,))
                last, last_at = snap, now
            await trio.sleep(SNAPSHOT_PERIOD)

    def _diff_peers(self, snap: NodeSnapshot) -> None:
        now = {p.peer_id: p.address for p in snap.peers}
        for pid, addr in now.items():
            if pid not in self._known_peers:
                self._emit_cb(PeerConnected(peer_id=pid, address=addr, at=time.time()))
        for pid in self._known_peers.keys() - now.keys():
            self.rtts.pop(pid, None)
            self._emit_cb(PeerDisconnected(peer_id=pid, at=time.time()))
        self._known_peers = now

    # -- runtime file (for `grove demo` and tools) --------------------------------------------
    def _write_runtime_file(self) -> None:
        assert self.host is not None
        info = {"pid": os.getpid(), "peer_id": self.host.peer_id,
                "listen_addrs": self.host.listen_addrs(), "started_at": self.started_at}
        atomic_write(self.config.paths.runtime_file, json.dumps(info).encode())

    def _write_json(self, name: str, items: tuple[Any, ...]) -> None:
        """What `grove peers` (villages.json: it filters expired records again on read) and
        `grove train` (training.json) and `grove swarm status` (swarm.json) read."""
        atomic_write(self.config.paths.data_dir / name,
                     json.dumps([to_jsonable(v) for v in items]).encode())

    def _remove_runtime_file(self) -> None:
        for path in (self.config.paths.runtime_file,
                     self.config.paths.data_dir / VILLAGES_FILE,
                     self.config.paths.data_dir / TRAINING_FILE,
                     self.config.paths.data_dir / SWARM_FILE):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def _stamp(path: Any) -> object:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _content(snap: NodeSnapshot) -> NodeSnapshot:
    return replace(snap, seq=0, uptime_s=0.0, usage=UsageView(),
                   peers=tuple(replace(p, rtt_ms=None) for p in snap.peers))
