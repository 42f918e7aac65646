"""Sampled checks of training work: is an update what real training gives?

A village's local training is reproducible by anyone: it starts from the collaboration's
parameters at the step (every member at the same state hash holds them), trains on its own
share of the data (a permutation seeded by its peer id), draws its batches from a generator
seeded by its peer id and the step, and takes exactly `samples / batch` SGD steps (its
averaging weight says how many samples). So a member that reduced, or checked, every slice
of another member's update can train the same steps itself and compare. An update that is
not what those steps give - noise, a scaled or stale update, fewer steps than the weight
claims, more samples than a step's target allows - fails the check.

`LocalSGD` is the one training loop both the worker and the checker run. `verdict` is pure.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

TOLERANCE = 1e-2    # relative difference (L2) an honest update stays within: the same
                    # float32 steps on another machine differ by far less; an update from
                    # half the steps, or scaled by 1.1, differs by far more
MAX_UPDATE_NORM = 1e4  # an update larger than this is no honest step: the worker sends zeros


def shard_seed(peer_id: str) -> int:
    """The seed of a village's share of the training data."""
    return int(hashlib.sha256(peer_id.encode()).hexdigest()[:8], 16)


def batch_seed(peer_id: str, epoch: int) -> int:
    """The seed of a village's batches for the step after `epoch`."""
    return int(hashlib.sha256(f"{peer_id}/{epoch}".encode()).hexdigest()[:12], 16)


def shard(peer_id: str, n: int, share: float) -> Any:
    """The indices of a village's share of `n` training samples (a torch tensor)."""
    import torch

    g = torch.Generator().manual_seed(shard_seed(peer_id))
    return torch.randperm(n, generator=g)[: max(1, int(n * share))]


class LocalSGD:
    """SGD with momentum from `start` on (x, y), batches drawn with `seed`; `step()` takes one
    batch, `update()` is where it got to less where it began."""

    def __init__(self, model: Any, x: Any, y: Any, start: np.ndarray, *, lr: float,
                 batch: int, seed: int, device: str = "cpu") -> None:
        import torch

        self.device = device
        model.to(device)
        self.model, self.x, self.y, self.batch = model, x.to(device), y.to(device), batch
        self.start = torch.from_numpy(np.array(start, dtype=np.float32, copy=True)).to(device)
        # (vector_to_parameters makes the parameters views of what it is given: a copy)
        torch.nn.utils.vector_to_parameters(self.start.clone(), model.parameters())
        self.opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        self.g = torch.Generator().manual_seed(seed)

    def step(self) -> None:
        import torch

        # drawn on the CPU whatever the device: the same batches everywhere
        idx = torch.randint(len(self.y), (self.batch,), generator=self.g).to(self.device)
        self.opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(self.model(self.x[idx]), self.y[idx])
        loss.backward()
        self.opt.step()

    def update(self) -> np.ndarray:
        import torch

        end = torch.nn.utils.parameters_to_vector(self.model.parameters()).detach()
        return (end - self.start).cpu().numpy().astype(np.float32)


def steps_claimed(weight: float, batch: int, target: int) -> tuple[int | None, str]:
    """How many SGD steps a weight says a member took, or None and why it cannot be honest:
    a worker sends max(samples, 1) with samples a whole number of batches, never past the
    step's target (it stops there)."""
    if weight == 1.0:
        return 0, ""
    if weight != int(weight) or int(weight) % batch:
        return None, f"a weight of {weight:g} is not a whole number of {batch}-sample batches"
    if weight > target + batch:
        return None, f"a weight of {weight:g} claims more samples than a step's target ({target})"
    return int(weight) // batch, ""


def verdict(sent: np.ndarray, want: np.ndarray) -> tuple[bool, str]:
    """Whether `sent` is the update the claimed training gives (`want`, recomputed), and if
    not, by how much it differs."""
    norm = float(np.linalg.norm(want))
    if not np.isfinite(norm) or norm > MAX_UPDATE_NORM:
        want = np.zeros_like(want)  # the worker sends zeros then
        norm = 0.0
    diff = float(np.linalg.norm(sent.astype(np.float64) - want))
    rel = diff / max(norm, 1e-6)
    if diff <= 1e-6 or rel <= TOLERANCE:
        return True, ""
    return False, (f"a sampled check failed: the update differs from the training it claims "
                   f"by {rel:.3g} (relative)")
