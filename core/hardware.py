"""What the machine has. NVML (nvidia-ml-py) for GPUs; no driver or no GPU is the normal
CPU case, reported with the reason NVML gave, never an error."""

from __future__ import annotations

from typing import Any


def nvml_status() -> dict[str, Any]:
    """{"available": bool, "reason": str, "driver": str|None, "gpu_count": int}."""
    try:
        import pynvml
    except ImportError as e:
        return {"available": False, "reason": f"nvidia-ml-py is not installed ({e})",
                "driver": None, "gpu_count": 0}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        return {"available": False, "reason": f"NVML: {e}", "driver": None, "gpu_count": 0}
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        count = pynvml.nvmlDeviceGetCount()
        driver = driver.decode() if isinstance(driver, bytes) else str(driver)
        reason = f"NVIDIA driver {driver}, {count} GPU{'s' if count != 1 else ''}"
        return {"available": True, "reason": reason, "driver": driver, "gpu_count": count}
    except pynvml.NVMLError as e:
        return {"available": False, "reason": f"NVML: {e}", "driver": None, "gpu_count": 0}
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
