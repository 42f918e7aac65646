"""Which tray icon a snapshot calls for, and why. Pure: no Qt, so every case is unit-tested."""

from __future__ import annotations

from dataclasses import dataclass

from core.snapshot import NodeSnapshot, NodeState, status_sentence


@dataclass(frozen=True)
class TrayState:
    icon: str  # one of app.icons.STATES
    tooltip: str


def tray_state(snap: NodeSnapshot, now: float) -> TrayState:
    sentence = status_sentence(snap, now)
    peers = f"{len(snap.peers)} peer{'s' if len(snap.peers) != 1 else ''}"
    if snap.state is NodeState.FAILED or snap.errors:
        detail = snap.errors[0] if snap.errors else sentence
        return TrayState("error", f"Grove: needs attention - {detail}")
    if snap.state is not NodeState.RUNNING:
        return TrayState("offline", f"Grove: {sentence}")
    if snap.is_paused(now):
        return TrayState("paused", f"Grove: {sentence} {peers}")
    if not snap.participating:
        return TrayState("off", f"Grove: {sentence}")
    if not snap.peers:
        return TrayState("offline", "Grove: participating, but no peers reached yet.")
    return TrayState("idle", f"Grove: {sentence}")
