"""The composition root: one trio loop owning the host; services are built in `core.compose`
over a `ServiceContext` and supervised (a crash restarts that service with backoff). The app
reaches it only through `NodeHandle`. Settings flow one way: command or file -> the settings
service -> the governor. Everything here runs on the node thread (trio)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import trio

from core import commands as cmd
from core import snapshot as sn
from core.compose import Services, build_services
from core.governor_service import check_limits_against_hardware
from core.lock import ProfileLock
from core.memory import MemoryBudget
from core.net.bandwidth import Bandwidth
from core.net.host import GroveHost
from core.net.village_host import open_village_host
from core.node_config import NodeConfig, ServiceFactory  # noqa: F401 (re-exported)
from core.peer_guard import PeerGuard
from core.personas.service import PersonaService
from core.ports import ServiceContext, SystemClock
from core.probe import probe
from core.publisher import Publisher
from core.settings_schema import Settings
from core.settings_service import SettingsService
from core.snapshot_build import NodeFacts, assemble
from core.supervisor import Supervisor
from core.usage import UsageMeter
from core.village import connect_village

log = logging.getLogger(__name__)


class Node:
    """Trio-native node. `await node.run(publish, emit, commands)` until stopped. Its
    services (`node.dht`, `node.averaging`, ...) exist while it runs."""

    def __init__(self, config: NodeConfig) -> None:
        self.config, self.rng, self.clock = config, random.Random(config.seed), SystemClock()
        self.host: GroveHost | None = None
        self.started_at: float | None = None
        self.state, self._started_mono = sn.NodeState.STARTING, 0.0  # trio clock at the start
        self._emit_cb: Callable[[sn.NodeEvent], None] = lambda e: None
        self.supervisor = Supervisor(self.emit, self.rng)
        self.scores = PeerGuard(self.clock)  # misbehaviour and its consequences, per peer
        self.relay_hop = False
        self.bandwidth = Bandwidth()
        self.memory = MemoryBudget()
        self.usage = UsageMeter(self.bandwidth, self.memory)
        self.personas = PersonaService()
        self.settings_service = SettingsService(
            config.paths.settings_file, config.file_settings, config.overrides,
            check=self._check, on_change=self._settings_changed)
        self.services: Services | None = None
        self._poke: Callable[[], None] = lambda: None  # the publisher's, while it runs

    settings = property(lambda self: self.settings_service.current)
    misbehaviour = property(lambda self: self.scores.counts)  # what the trust layer reads

    def __getattr__(self, name: str) -> Any:  # node.dht, node.training... while it runs
        services = self.__dict__.get("services")
        if services is not None and name in Services.__dataclass_fields__:
            return getattr(services, name)
        raise AttributeError(name)

    def emit(self, event: sn.NodeEvent) -> None:
        self._emit_cb(replace(event, at=time.time()))
        self._poke()

    def _check(self, settings: Settings) -> None:  # limits this machine cannot meet
        if self.services is not None:
            check_limits_against_hardware(settings, self.services.governor.hardware)

    def _settings_changed(self, fields: tuple[str, ...]) -> None:
        if self.services is not None:
            self.services.governor.poke()
        self.emit(sn.SettingsChanged(fields=fields))

    # -- the loop ----------------------------------------------------------------------------
    async def run(self, publish: Callable[[sn.NodeSnapshot], None],
                  emit: Callable[[sn.NodeEvent], None],
                  commands: trio.MemoryReceiveChannel[tuple[cmd.Command, Any]],
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._emit_cb = emit
        paths, s = self.config.paths, self.settings
        with ProfileLock(paths.data_dir / "node.lock", paths.profile), \
                self.personas.opened(paths.data_dir / "personas.db"):
            async with open_village_host(self.config.key.seed, s, self.bandwidth) as \
                    (host, self.relay_hop):
                self.host = host
                ctx = ServiceContext(host.peer_id, self.config.key.sign, paths.data_dir, self.rng,
                                     self.clock, self.settings_service, self.scores.penalise,
                                     host, self.bandwidth, self.memory)
                sv = self.services = build_services(ctx, self.personas, self.scores,
                                                    lambda: self.relay_hop)
                self.started_at, self._started_mono = time.time(), trio.current_time()
                self.state = sn.NodeState.RUNNING
                publisher = Publisher(paths, self.snapshot, self._emit_cb)
                publisher.files.write_runtime(host.peer_id, host.listen_addrs(), self.started_at)
                log.info("village %s listening on %s", host.peer_id, host.listen_addrs())
                try:
                    async with trio.open_nursery() as nursery:
                        runners = sv.runners()
                        runners["settings"] = self.settings_service.run
                        runners["personas"] = lambda: self.personas.watch(
                            paths.data_dir / "personas.db", self.settings_service.touch)
                        runners["talk-requests"] = lambda: sv.conversations.serve_requests(
                            self.personas)
                        for name, factory in self.config.extra_services.items():
                            runners[name] = factory(self)
                        for name, svc in runners.items():
                            nursery.start_soon(self.supervisor.run, name, svc)
                        publish(publisher.first())
                        self._poke = publisher.poke
                        nursery.start_soon(publisher.run, publish,
                                           sv.governor.wait_decision_changed,
                                           self.settings_service.wait_changed)
                        task_status.started(host.peer_id)
                        await self._command_loop(commands, nursery)
                finally:
                    self.state = sn.NodeState.STOPPING
                    self.host = None
                    with trio.CancelScope(shield=True):
                        await sv.test_jobs.stop()
                    publisher.files.remove_all()

    async def _command_loop(self, commands: trio.MemoryReceiveChannel[tuple[cmd.Command, Any]],
                            nursery: trio.Nursery) -> None:
        """In order; long ones (a limits test) beside the loop, so a pause is not kept waiting."""
        async for command, reply in commands:
            if isinstance(command, cmd.Stop):
                log.info("stopping: %s", command.reason)
                reply(None, None)
                nursery.cancel_scope.cancel()
                return
            if isinstance(command, cmd.RunTestJob | cmd.Average | cmd.Generate | cmd.Complete):
                nursery.start_soon(self._execute_and_reply, command, reply)
            else:
                await self._execute_and_reply(command, reply)

    async def execute(self, command: Any) -> Any:  # one command, on the node thread
        return await self._handlers().get(type(command), _unknown)(command)

    async def _execute_and_reply(self, command: cmd.Command, reply: Any) -> None:
        try:
            result = await self.execute(command)
        except Exception as e:
            reply(None, e)
        else:
            reply(result, None)
        finally:
            self._poke()  # what the command changed shows now

    def _handlers(self) -> dict[type, Callable[[Any], Any]]:  # the command dispatch table
        sv, host = self.services, self.host
        assert sv is not None and host is not None
        return {
            cmd.SetParticipation: self._participate, cmd.Pause: self._pause,
            cmd.Resume: self._pause, cmd.RunTestJob: lambda c: sv.test_jobs.run(c.seconds),
            cmd.Average: lambda c: sv.averaging.average(
                c.key, c.vector, close_at=c.close_at, deadline_at=c.deadline_at,
                weight=c.weight, max_group=c.max_group, compression=c.compression),
            cmd.UpdateSettings: lambda c: self.settings_service.change(c.changes),
            **dict.fromkeys((cmd.AddPersona, cmd.UpdatePersona, cmd.RemovePersona), self._persona),
            cmd.StartConversation: lambda c: sv.conversations.start(
                c.persona_id, list(c.partners), c.turns),
            cmd.StopConversation: lambda c: sv.conversations.stop(c.conversation),
            cmd.Connect: lambda c: host.connect(c.address) if c.address.startswith("/") else
            connect_village(host, sv.dht, c.address, self.clock.wall()),
            cmd.Ping: lambda c: host.ping(c.peer_id),
            cmd.Probe: lambda c: probe(host, c.peer_id, c.size),
            cmd.Generate: lambda c: sv.swarm_trainer.generate(c.text, c.new_tokens, c.on_text),
            cmd.Complete: lambda c: sv.swarm_trainer.complete(c.prompt, c.max_tokens, c.level),
        }

    async def _participate(self, command: cmd.SetParticipation) -> bool:
        await self.settings_service.change({"participate": command.participate})
        self.emit(sn.ParticipationChanged(participating=command.participate))
        return command.participate

    async def _pause(self, command: cmd.Pause | cmd.Resume) -> float | None:
        assert self.services is not None
        until = command.until if isinstance(command, cmd.Pause) else None
        await self.services.governor.set_pause(until)
        self.emit(sn.PauseChanged(paused_until=until))
        return until

    async def _persona(self, command: Any) -> Any:  # Add-, Update- or RemovePersona
        result = await self.personas.apply(command)
        self.settings_service.touch()  # the village record lists the personas
        return result

    def snapshot(self) -> sn.NodeSnapshot:
        assert self.services is not None
        c = self.config
        facts = NodeFacts(self.state, c.paths.profile, self.started_at,
                          trio.current_time() - self._started_mono if self.started_at else 0.0,
                          time.time(), time.time() - time.monotonic(), c.key_info.note,
                          c.key_info.is_fallback, c.notices, self.relay_hop)
        return assemble(facts, self.host, self.services, settings=self.settings,
                        supervisor_status=self.supervisor.status,
                        personas=self.personas.current, usage=self.usage.sample())


async def _unknown(command: object) -> None:
    raise TypeError(f"unknown command {command!r}")
