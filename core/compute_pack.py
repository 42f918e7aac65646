"""The compute pack: torch, shipped beside the frozen build rather than in it.

torch's CPU library alone is 434 MB on Linux, more than the whole tray bundle may weigh, and
gardeners with GPUs need a CUDA build of it anyway. So the bundle leaves torch out and
training, SWARM serving and robust averaging import it from a pack: a signed tarball of torch
and its pure-Python dependencies (installers/build-compute-pack), unpacked as `compute/` next
to the `grove` executable, or wherever GROVE_COMPUTE_PATH points. Installed from source
(`pip install`), torch is an ordinary dependency and nothing here applies.

A pack comes in two variants: `cpu` (torch's CPU build) and `cuda12` (torch's CUDA 12 build
with its CUDA libraries, gigabytes). Each carries `PACK.json` (variant, torch version, CUDA
version) written by the build. Which one a computer needs follows from what NVML reports
(`recommend`: an NVIDIA GPU whose driver supports CUDA 12 → `cuda12`, else `cpu`), and the app
says which pack it runs, which it would need and why (`pack_report`: `grove doctor`, the
smoke test).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import GardenerError

ENV = "GROVE_COMPUTE_PATH"
MANIFEST = "PACK.json"
MANIFEST_MAX = 4096          # bytes: the manifest is a few fields
VARIANTS = ("cpu", "cuda12")
CUDA_MAJOR = 12              # the CUDA pack's runtime: the driver must support at least this


def candidates(env: Mapping[str, str] | None = None) -> list[Path]:
    env = os.environ if env is None else env
    out = [Path(p) for p in env.get(ENV, "").split(os.pathsep) if p]
    if getattr(sys, "frozen", False):
        out.append(Path(sys.executable).resolve().parent / "compute")
    return out


def activate(env: Mapping[str, str] | None = None) -> Path | None:
    """Put the first pack found (a folder holding `torch/`) on sys.path; the folder or None."""
    for d in candidates(env):
        if (d / "torch").is_dir():
            if str(d) not in sys.path:
                sys.path.append(str(d))
            return d
    return None


def missing_sentence() -> str:
    return ("Training and SWARM serving need Grove's compute pack (torch), which is not "
            "installed: download grove-compute for your platform, check it with `grove "
            "verify`, and unpack it as `compute/` next to the grove program.")


class ComputePackMissing(GardenerError):
    """torch cannot be imported: a frozen build without its compute pack."""


def require_torch() -> None:
    """Import torch, or raise ComputePackMissing with what to do (not a bare traceback)."""
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != "torch":
            raise
        raise ComputePackMissing(missing_sentence()) from None


@dataclass(frozen=True)
class PackInfo:
    variant: str             # "cpu", "cuda12", or "unknown" (no readable manifest)
    torch: str = ""
    cuda: str = ""
    note: str = ""           # why the manifest could not be read, when it could not


def read_pack(folder: Path) -> PackInfo:
    """The manifest of the pack in `folder` (the `compute/` folder holding `torch/`)."""
    try:
        with open(folder / MANIFEST, "rb") as f:
            raw = json.loads(f.read(MANIFEST_MAX + 1))
        variant, torch_v, cuda = raw["variant"], raw.get("torch", ""), raw.get("cuda") or ""
    except FileNotFoundError:
        return PackInfo("unknown", note=f"no {MANIFEST} (a pack built before variants)")
    except (OSError, ValueError, KeyError, TypeError) as e:
        return PackInfo("unknown", note=f"{MANIFEST} cannot be read ({e})")
    if variant not in VARIANTS or not isinstance(torch_v, str) or not isinstance(cuda, str):
        return PackInfo("unknown", note=f"{MANIFEST} cannot be read (variant {variant!r})")
    return PackInfo(variant, torch_v[:40], cuda[:20])


def recommend(nvml: Any) -> tuple[str, str]:
    """Which pack this computer needs, and why, from an NVML reading
    (`core.hardware.NvmlReading`). Pure."""
    if not nvml.available:
        return "cpu", f"no NVIDIA GPU can be used here ({nvml.reason})"
    if not nvml.gpus:
        return "cpu", "NVML sees no GPU"
    names = ", ".join(dict.fromkeys(g.name for g in nvml.gpus))
    try:
        major = int(str(nvml.cuda_version).split(".")[0])
    except ValueError:
        major = 0
    if major < CUDA_MAJOR:
        return "cpu", (f"the NVIDIA driver ({nvml.driver or 'version unknown'}) supports CUDA "
                       f"{nvml.cuda_version or 'unknown'}; the GPU pack needs CUDA "
                       f"{CUDA_MAJOR} or newer - update the driver to lend {names}")
    return "cuda12", (f"{len(nvml.gpus)} NVIDIA GPU(s) ({names}) with a driver for CUDA "
                      f"{nvml.cuda_version}")


def pack_report(nvml: Any, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Which pack runs (or none, or torch installed as a package), which this computer needs
    and why, and what to do when they differ."""
    wanted, why = recommend(nvml)
    folder = next((d for d in candidates(env) if (d / "torch").is_dir()), None)
    out: dict[str, Any] = {"recommended": wanted, "why": why}
    if folder is None:
        try:
            import importlib.util

            installed = importlib.util.find_spec("torch") is not None
        except (ImportError, ValueError):
            installed = False
        out.update(running="package" if installed else "none", path="")
        out["note"] = ("torch is installed as a Python package (not a pack)" if installed
                       else missing_sentence())
        return out
    info = read_pack(folder)
    out.update(running=info.variant, path=str(folder), torch=info.torch, cuda=info.cuda)
    if info.variant == "cpu" and wanted == "cuda12":
        out["note"] = (f"The CPU pack runs, so your GPU does no work: {why}. Download "
                       "grove-compute-cuda12 for your platform, check it with `grove verify` "
                       "and unpack it as `compute/` in place of this one.")
    elif info.variant == "cuda12" and wanted == "cpu":
        out["note"] = (f"The CUDA pack runs but {why}: work runs on the CPU. The CPU pack "
                       "does the same in a fraction of the space.")
    else:
        out["note"] = info.note or f"the {info.variant} pack, as this computer needs"
    return out
