"""The compute pack: torch, shipped beside the frozen build rather than in it.

torch's CPU library alone is 434 MB on Linux, more than the whole tray bundle may weigh, and
gardeners with GPUs need a CUDA build of it anyway. So the bundle leaves torch out and
training, SWARM serving and robust averaging import it from a pack: a signed tarball of torch
and its pure-Python dependencies (installers/build-compute-pack), unpacked as `compute/` next
to the `grove` executable, or wherever GROVE_COMPUTE_PATH points. Installed from source
(`pip install`), torch is an ordinary dependency and nothing here applies.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from core.errors import GardenerError

ENV = "GROVE_COMPUTE_PATH"


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
