"""Compute tiers from the VRAM the gardener allows. Pure.

The tier is computed on *usable* VRAM: the card's total, capped by the gardener's per-GPU
limit, over the GPUs they allow. Thresholds and what each tier allows live in one table.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class TierSpec:
    name: str
    min_vram_gib: float  # usable VRAM on the best allowed GPU
    services: tuple[str, ...]
    max_model_params_m: int  # largest model (millions of parameters) it is offered


# Ordered best first; the first whose threshold the best GPU meets is the tier.
TIERS: tuple[TierSpec, ...] = (
    TierSpec("prosumer-gpu", 16, ("telemetry", "averaging", "training", "swarm", "relay"),
             7000),
    TierSpec("consumer-gpu", 4, ("telemetry", "averaging", "training", "swarm", "relay"), 1500),
    TierSpec("cpu", 0, ("telemetry", "averaging", "training", "relay"), 50),
)
BY_NAME = {t.name: t for t in TIERS}
TIER_NAMES = tuple(t.name for t in TIERS)


@dataclass(frozen=True)
class GpuView:
    index: int
    name: str
    vram_total: int  # bytes


@dataclass(frozen=True)
class TierDecision:
    tier: str
    reason: str
    usable_vram: dict[int, int]  # GPU index -> bytes the network may use

    @property
    def spec(self) -> TierSpec:
        return BY_NAME[self.tier]


def usable_vram(gpu: GpuView, vram_cap_mb: int) -> int:
    return gpu.vram_total if vram_cap_mb == 0 else min(gpu.vram_total, vram_cap_mb * MIB)


def compute_tier(gpus: list[GpuView], *, nvml_reason: str, use_gpu: bool,
                 allowed_gpus: tuple[str, ...], vram_cap_mb: int) -> TierDecision:
    if not gpus:
        return TierDecision("cpu", f"no usable GPU: {nvml_reason}", {})
    if not use_gpu:
        return TierDecision("cpu", "GPU use is switched off in the limits", {})
    allowed = [g for g in gpus if not allowed_gpus or str(g.index) in allowed_gpus]
    if not allowed:
        return TierDecision("cpu", "none of this machine's GPUs is allowed in the limits", {})
    usable = {g.index: usable_vram(g, vram_cap_mb) for g in allowed}
    best = max(allowed, key=lambda g: usable[g.index])
    best_gib = usable[best.index] / GIB
    for spec in TIERS:
        if best_gib >= spec.min_vram_gib:
            if spec.name == "cpu":
                return TierDecision("cpu", (
                    f"GPU {best.index} ({best.name}) offers {best_gib:.1f} GiB usable VRAM; "
                    f"a GPU tier needs at least {BY_NAME['consumer-gpu'].min_vram_gib:g} GiB"),
                    usable)
            capped = " (capped by your limit)" if usable[best.index] < best.vram_total else ""
            return TierDecision(spec.name, f"GPU {best.index} ({best.name}): "
                                f"{best_gib:.1f} GiB usable VRAM{capped}", usable)
    raise AssertionError("the cpu tier has threshold 0")
