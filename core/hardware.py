"""What the machine has: CPU, RAM and battery (psutil), GPUs (NVML via nvidia-ml-py).

No driver or no GPU is the normal CPU case, reported with the reason NVML gave, never an
error. NVML failing mid-run (a driver reset) reads as "no GPUs" with that reason, so the tier
degrades to `cpu` and GPU work pauses rather than crashes. Call from any thread; blocking.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from core.tiers import GpuView


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    uuid: str
    vram_total: int  # bytes
    vram_free: int
    utilization_pct: float | None
    temperature_c: float | None
    power_w: float | None


@dataclass(frozen=True)
class NvmlReading:
    available: bool
    reason: str
    driver: str | None = None
    cuda_version: str | None = None
    gpus: tuple[GpuInfo, ...] = ()


@dataclass(frozen=True)
class BatteryInfo:
    present: bool
    percent: float | None = None
    plugged_in: bool | None = None


@dataclass(frozen=True)
class HardwareInfo:
    cpu_model: str
    physical_cores: int
    logical_cores: int
    ram_total: int
    ram_available: int
    battery: BatteryInfo
    nvml: NvmlReading = field(default_factory=lambda: NvmlReading(False, "not probed"))

    def gpu_views(self) -> list[GpuView]:
        return [GpuView(g.index, g.name, g.vram_total) for g in self.nvml.gpus]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _maybe(fn: Any, *args: Any) -> Any:
    import pynvml

    try:
        return fn(*args)
    except pynvml.NVMLError:
        return None


def read_nvml() -> NvmlReading:
    try:
        import pynvml
    except ImportError as e:
        return NvmlReading(False, f"nvidia-ml-py is not installed ({e})")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        return NvmlReading(False, f"NVML: {e}")
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = _maybe(pynvml.nvmlSystemGetCudaDriverVersion_v2)
        cuda_text = f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else None
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            util = _maybe(pynvml.nvmlDeviceGetUtilizationRates, h)
            temp = _maybe(pynvml.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU)
            power = _maybe(pynvml.nvmlDeviceGetPowerUsage, h)
            gpus.append(GpuInfo(
                index=i, name=_text(pynvml.nvmlDeviceGetName(h)),
                uuid=_text(_maybe(pynvml.nvmlDeviceGetUUID, h) or ""),
                vram_total=int(mem.total), vram_free=int(mem.free),
                utilization_pct=float(util.gpu) if util is not None else None,
                temperature_c=float(temp) if temp is not None else None,
                power_w=power / 1000 if power is not None else None))
        n = len(gpus)
        reason = f"NVIDIA driver {driver}, {n} GPU{'s' if n != 1 else ''}"
        return NvmlReading(True, reason, driver, cuda_text, tuple(gpus))
    except pynvml.NVMLError as e:
        return NvmlReading(False, f"NVML: {e}")
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def nvml_status() -> dict[str, Any]:
    """The short form for `grove doctor`."""
    r = read_nvml()
    return {"available": r.available, "reason": r.reason, "driver": r.driver,
            "gpu_count": len(r.gpus)}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def read_battery() -> BatteryInfo:
    try:
        b = psutil.sensors_battery()
    except (AttributeError, OSError, RuntimeError):
        b = None
    if b is None:
        return BatteryInfo(False)
    return BatteryInfo(True, float(b.percent), bool(b.power_plugged)
                       if b.power_plugged is not None else None)


def probe_hardware(nvml: NvmlReading | None = None) -> HardwareInfo:
    vm = psutil.virtual_memory()
    return HardwareInfo(
        cpu_model=cpu_model(),
        physical_cores=psutil.cpu_count(logical=False) or os.cpu_count() or 1,
        logical_cores=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        ram_total=int(vm.total), ram_available=int(vm.available),
        battery=read_battery(),
        nvml=nvml if nvml is not None else read_nvml())
