"""Compute tiers on the VRAM the gardener allows: every boundary, multi-GPU, fake NVML."""

from __future__ import annotations

import pytest

from core.hardware import BatteryInfo, GpuInfo, HardwareInfo, NvmlReading
from core.tiers import GIB, MIB, TIERS, GpuView, compute_tier


def tier(gpus: list[GpuView], cap_mb: int = 0, allowed: tuple[str, ...] = (),
         use_gpu: bool = True):
    return compute_tier(gpus, nvml_reason="NVML: Driver Not Loaded", use_gpu=use_gpu,
                        allowed_gpus=allowed, vram_cap_mb=cap_mb)


@pytest.mark.parametrize(("vram", "expect"), [
    (0, "cpu"),
    (4 * GIB - 1, "cpu"),
    (4 * GIB, "consumer-gpu"),
    (16 * GIB - 1, "consumer-gpu"),
    (16 * GIB, "prosumer-gpu"),
    (80 * GIB, "prosumer-gpu"),
])
def test_every_boundary(vram: int, expect: str) -> None:
    assert tier([GpuView(0, "Card", vram)]).tier == expect


def test_no_gpu_is_cpu_with_nvmls_reason() -> None:
    d = tier([])
    assert d.tier == "cpu" and d.reason == "no usable GPU: NVML: Driver Not Loaded"


def test_the_cap_not_the_card_decides() -> None:
    card = [GpuView(0, "RTX 4090", 24 * GIB)]
    assert tier(card).tier == "prosumer-gpu"
    capped = tier(card, cap_mb=8 * 1024)
    assert capped.tier == "consumer-gpu" and "capped by your limit" in capped.reason
    assert capped.usable_vram == {0: 8 * GIB}
    assert tier(card, cap_mb=2048).tier == "cpu"
    assert tier(card, use_gpu=False).tier == "cpu"


def test_multi_gpu_best_allowed_card_counts() -> None:
    gpus = [GpuView(0, "small", 6 * GIB), GpuView(1, "big", 20 * GIB)]
    assert tier(gpus).tier == "prosumer-gpu"
    only_small = tier(gpus, allowed=("0",))
    assert only_small.tier == "consumer-gpu" and "GPU 0 (small)" in only_small.reason
    assert tier(gpus, allowed=("7",)).tier == "cpu"
    assert tier(gpus, cap_mb=5000).usable_vram == {0: 5000 * MIB, 1: 5000 * MIB}


def test_thresholds_live_in_one_table() -> None:
    assert [t.name for t in TIERS] == ["prosumer-gpu", "consumer-gpu", "cpu"]
    assert all("swarm" not in t.services for t in TIERS if t.name == "cpu")


def test_tier_from_a_fake_nvml_reading() -> None:
    reading = NvmlReading(True, "NVIDIA driver 550.1, 2 GPUs", "550.1", "12.4", (
        GpuInfo(0, "RTX 3060", "GPU-a", 12 * GIB, 11 * GIB, 3.0, 45.0, 30.0),
        GpuInfo(1, "RTX 3090", "GPU-b", 24 * GIB, 23 * GIB, 0.0, 40.0, 25.0)))
    hw = HardwareInfo("cpu", 8, 16, 32 * GIB, 16 * GIB, BatteryInfo(False), reading)
    d = compute_tier(hw.gpu_views(), nvml_reason=reading.reason, use_gpu=True,
                     allowed_gpus=(), vram_cap_mb=0)
    assert d.tier == "prosumer-gpu" and "GPU 1 (RTX 3090)" in d.reason
