"""Wiring: every service of a village built from one `ServiceContext` and the ports each one
uses. The composition root (`core.node`) calls `build_services`; nothing else builds them.

Rules: this module only constructs and connects; it holds no state of its own and runs no
task. Reading it is how to see who depends on whom.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.activity import ActivityService, process_cpu_seconds
from core.averaging.service import AveragingService
from core.dht.service import DhtService
from core.discovery import DiscoveryService
from core.governor_service import GovernorService
from core.ledger.service import LedgerService
from core.ledger.trust import NetworkTrust
from core.peer_guard import PeerGuard
from core.personas.service import PersonaService
from core.personas.talk import ConversationService
from core.ports import ServiceContext
from core.reachability import ReachabilityService
from core.release.service import UpdateService
from core.resources import pretrusted_villages
from core.swarm.challenge import ChallengeService
from core.swarm.service import SwarmService
from core.swarm.trainer import SwarmTrainer
from core.telemetry import MeasuredHealth, TelemetryService
from core.testjob import TestJobRunner
from core.training.service import TrainingService
from core.village import VillageRecordSource

log = logging.getLogger(__name__)


@dataclass
class Services:
    ctx: ServiceContext
    governor: GovernorService
    test_jobs: TestJobRunner
    dht: DhtService
    discovery: DiscoveryService
    reachability: ReachabilityService
    averaging: AveragingService
    telemetry: TelemetryService
    training: TrainingService
    swarm: SwarmService
    swarm_trainer: SwarmTrainer
    challenges: ChallengeService
    ledger: LedgerService
    trust: NetworkTrust
    conversations: ConversationService
    updates: UpdateService
    guard: PeerGuard
    activity: ActivityService

    def runners(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """The long-running task of each service, by name (the supervisor runs them)."""
        return {"discovery": self.discovery.run, "dht": self.dht.run,
                "reachability": self.reachability.run, "averaging": self.averaging.run,
                "telemetry": self.telemetry.run, "training": self.training.run,
                "swarm": self.swarm.run, "swarm-trainer": self.swarm_trainer.run,
                "challenges": self.challenges.run,
                "ledger": self.ledger.run, "trust": self.trust.run,
                "conversations": self.conversations.run, "governor": self.governor.run,
                "updates": self.updates.run, "guard": self.guard.run,
                "activity": self.activity.run}


def build_services(ctx: ServiceContext, personas: PersonaService, guard: PeerGuard,
                   relay_hop: Callable[[], bool]) -> Services:
    """Every service of a running village, over `ctx.transport`; `guard` is the one whose
    `penalise` the context carries (it refuses at the transport what it judged)."""
    guard.attach(ctx.transport)
    governor = GovernorService(ctx)
    reach = ReachabilityService(ctx)
    village = VillageRecordSource(ctx, tier=lambda: governor.tier,
                                  personas=lambda: personas.current, relay_hop=relay_hop,
                                  presence=governor.presence,
                                  upload_mbps=lambda: averaging.upload.value,
                                  changes=(reach.wait_changed,))
    dht = DhtService(ctx, village)
    reach.relay_records = dht.relay_records
    discovery = DiscoveryService(ctx, lambda: len(dht.table) if dht.table is not None else 0)
    averaging = AveragingService(ctx, dht, reach)

    ledger = LedgerService(ctx)
    challenges = ChallengeService(ctx, dht, ledger)
    ledger.on_evidence = challenges.submit
    health = MeasuredHealth(ctx, governor=governor, reach=reach, personas=personas,
                            discovery=discovery, ledger=ledger)
    trainer = SwarmTrainer(ctx, dht, governor, ledger)
    trust = NetworkTrust(ctx, dht, ledger.read_scores, ledger.set_network_trust,
                         pretrusted_villages)
    return Services(
        ctx=ctx, governor=governor, test_jobs=TestJobRunner(governor), dht=dht, discovery=discovery,
        reachability=reach, averaging=averaging,
        telemetry=TelemetryService(ctx, dht, averaging, health),  # type: ignore[arg-type]
        training=TrainingService(ctx, dht, averaging, governor, ledger),
        swarm=SwarmService(ctx, dht, governor, reach, ledger, averager=averaging,
                           trainer=trainer), swarm_trainer=trainer, challenges=challenges,
        ledger=ledger, trust=trust,
        conversations=ConversationService(ctx, dht, personas), updates=UpdateService(ctx),
        guard=guard, activity=ActivityService(ctx, cpu_seconds=process_cpu_seconds,
                                              allowed=lambda: governor.view().may_compute))
