"""Which device the network's work runs on. Pure: facts in, a choice and its reason out.

NVML and CUDA number GPUs differently: NVML by PCI order, CUDA by its own order (fastest
first unless CUDA_DEVICE_ORDER=PCI_BUS_ID) and only over the GPUs CUDA_VISIBLE_DEVICES shows,
renumbered from 0. The gardener's limits name NVML's indices (what the tray and
`grove doctor` show), so a GPU is matched to its CUDA ordinal by UUID, never by position.

A job runs on the allowed GPU with the most usable memory that is not cooling down, that
torch can see and that has room for the job; otherwise on the CPU, and the choice says why
in words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class DeviceChoice:
    device: str               # "cpu" or "cuda:<ordinal>"
    gpu: int | None           # NVML index of the GPU chosen (None: the CPU)
    reason: str
    mixed_precision: bool = False  # bfloat16 autocast (compute capability 8.0 or later)

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


CPU_ANYWAY = DeviceChoice("cpu", None, "runs on the CPU")


def _plain_uuid(uuid: str) -> str:
    """NVML says 'GPU-1f2e…', torch '1f2e…' (its UUID object's text): compare the hex."""
    u = uuid.strip().lower()
    if u.startswith("gpu-"):
        u = u[4:]
    return u.replace("-", "")


def cuda_ordinals(nvml_uuids: Mapping[int, str], cuda_uuids: Sequence[str]
                  ) -> dict[int, int]:
    """NVML index -> CUDA ordinal, for the GPUs both see (matched by UUID)."""
    by_uuid = {_plain_uuid(u): ordinal for ordinal, u in enumerate(cuda_uuids) if u}
    return {idx: by_uuid[_plain_uuid(u)] for idx, u in nvml_uuids.items()
            if u and _plain_uuid(u) in by_uuid}


def choose_device(usable_vram: Mapping[int, int], *, hot: Sequence[int] | frozenset[int],
                  ordinals: Mapping[int, int], need_bytes: int,
                  capability: Mapping[int, tuple[int, int]] | None = None,
                  tier_reason: str = "") -> DeviceChoice:
    """`usable_vram`: the allowed GPUs (NVML index -> bytes the network may use: the tier's
    decision, empty when GPU use is off or none is allowed); `hot`: GPUs cooling down;
    `ordinals`: which of them torch can reach (`cuda_ordinals`); `need_bytes`: what the job
    needs on the device; `capability`: CUDA compute capability per NVML index."""
    if not usable_vram:
        return DeviceChoice("cpu", None, f"on the CPU: {tier_reason or 'no GPU is allowed'}")
    why: list[str] = []
    fits = []
    for idx in sorted(usable_vram, key=lambda i: (-usable_vram[i], i)):
        if idx in hot:
            why.append(f"GPU {idx} is cooling down")
        elif idx not in ordinals:
            why.append(f"torch cannot use GPU {idx} (a CPU-only build, or hidden by "
                       f"CUDA_VISIBLE_DEVICES)")
        elif usable_vram[idx] < need_bytes:
            why.append(f"GPU {idx} has {usable_vram[idx] / GIB:.1f} GiB usable, the job needs "
                       f"{need_bytes / GIB:.1f} GiB")
        else:
            fits.append(idx)
    if not fits:
        return DeviceChoice("cpu", None, "on the CPU: " + "; ".join(why))
    idx = fits[0]
    major = (capability or {}).get(idx, (0, 0))[0]
    return DeviceChoice(f"cuda:{ordinals[idx]}", idx,
                        f"on GPU {idx} ({usable_vram[idx] / GIB:.1f} GiB usable)",
                        mixed_precision=major >= 8)


def vram_fractions(fractions: Mapping[int, float], ordinals: Mapping[int, int]
                   ) -> dict[int, float]:
    """The governor's per-GPU memory fraction (by NVML index) by CUDA ordinal, for
    torch.cuda.set_per_process_memory_fraction; GPUs torch cannot see are left out."""
    return {ordinals[idx]: f for idx, f in fractions.items() if idx in ordinals}
