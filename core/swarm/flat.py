"""A block's parameters and Adam's state as flat float32 vectors (what stage averages, parameter
fetches and sampled checks carry), and the forward a check recomputes from them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from core.swarm.model import Block, ModelSpec, build_block


class ComputeRefused(ValueError):
    """A job the blocks cannot do (a block not held, a result that is not finite)."""


def to_flat(block: Block) -> np.ndarray:
    """The block's parameters, in order, as one float32 vector."""
    return torch.cat([p.detach().reshape(-1).cpu() for p in block.parameters()]).numpy()


def adam_moments(opt: torch.optim.Optimizer, block: Block
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """Adam's first and second moments over the block's parameters (zeros before its first
    step) and its step count."""
    ms, vs, step = [], [], 0.0
    for p in block.parameters():
        st = opt.state.get(p) or {}
        if "exp_avg" in st:
            ms.append(st["exp_avg"].detach().reshape(-1).cpu())
            vs.append(st["exp_avg_sq"].detach().reshape(-1).cpu())
            step = float(st["step"])
        else:
            ms.append(torch.zeros(p.numel()))
            vs.append(torch.zeros(p.numel()))
    return torch.cat(ms).numpy(), torch.cat(vs).numpy(), step


def set_adam_moments(opt: torch.optim.Optimizer, block: Block, m: np.ndarray, v: np.ndarray,
                     step: float) -> None:
    """Adam's state set to the stage's: the moments, the step count rounded (none below
    one step: a fresh optimizer)."""
    steps = round(step)
    params = list(block.parameters())
    for p, mp, vp in zip(params, pieces(m, params), pieces(np.maximum(v, 0.0), params),
                         strict=True):
        if steps < 1:
            opt.state.pop(p, None)
        else:
            opt.state[p] = {"step": torch.tensor(float(steps)), "exp_avg": mp.to(p.device),
                            "exp_avg_sq": vp.to(p.device)}


def pieces(flat: np.ndarray, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """`flat` (float32 values, in order) cut into new tensors shaped like each of `like`."""
    out, at = [], 0
    for t in like:
        out.append(torch.from_numpy(np.array(flat[at:at + t.numel()], dtype=np.float32))
                   .reshape(t.shape))
        at += t.numel()
    return out


def recompute(spec: ModelSpec, params: dict[int, np.ndarray], x: np.ndarray) -> np.ndarray:
    """A forward through blocks built from `params` (index -> flat parameters): what a
    consumer's sampled check compares a server's answer with."""
    h = torch.from_numpy(np.array(x, dtype=np.float32))
    with torch.no_grad():
        for i in sorted(params):
            block = build_block(spec, i)
            set_flat(block, params[i])
            h = block(h)
    return h.numpy()


def set_flat(block: Block, flat: np.ndarray) -> None:
    """The block's parameters set from `flat` (ComputeRefused when its length is wrong)."""
    total = sum(p.numel() for p in block.parameters())
    if flat.shape != (total,):
        raise ComputeRefused(f"{flat.size} parameters for a block of {total}")
    offset = 0
    with torch.no_grad():
        for p in block.parameters():
            n = p.numel()
            p.copy_(torch.from_numpy(flat[offset:offset + n].reshape(p.shape)))
            offset += n


def block_size(spec: ModelSpec) -> int:
    """Parameters in one block (what a parameter transfer must carry)."""
    return sum(p.numel() for p in build_block(spec, 0).parameters())
