"""Byzantine villages for the robustness benchmarks and tests. Never part of a gardener's
build (bench/ is not packaged): nothing in core/ or app/ imports this.

Each attack maps what the Byzantine villages would honestly send (`own`, shape (f, d)) and,
for the omniscient attacks, what the honest villages send (`honest`, shape (h, d)) to what
they send instead. `label_flip` is not here: those villages train on flipped labels
(`flip_labels`) and send the honest-looking result.
"""

from __future__ import annotations

from statistics import NormalDist

import torch

ATTACKS = ("sign_flip", "scaled", "gaussian", "alie", "ipm", "label_flip")

SIGN_FLIP_SCALE = 5.0   # flipped, amplified: 3 of 16 attackers turn the mean backwards
SCALED = 100.0          # the honest direction, 100 times too long
GAUSSIAN_RMS = 10.0     # noise 10x the honest updates' RMS
IPM_EPSILON = 5.0       # inner-product manipulation (-eps * honest mean), same reasoning


def alie_z(n: int, f: int) -> float:
    """'A little is enough' (Baruch et al., 2019): how many standard deviations the attackers
    can move every coordinate while staying inside what the majority would accept."""
    s = n // 2 + 1 - f
    return NormalDist().inv_cdf((n - s) / n)


def attack(name: str, own: torch.Tensor, honest: torch.Tensor,
           gen: torch.Generator) -> torch.Tensor:
    f = own.shape[0]
    if name == "sign_flip":
        return -SIGN_FLIP_SCALE * own
    if name == "scaled":
        return SCALED * own
    if name == "gaussian":
        rms = honest.pow(2).mean().sqrt()
        return GAUSSIAN_RMS * rms * torch.randn(own.shape, generator=gen, dtype=own.dtype)
    if name == "alie":
        mu, sd = honest.mean(0), honest.std(0)
        z = alie_z(honest.shape[0] + f, f)
        return (mu - z * sd).expand(f, -1).clone()
    if name == "ipm":
        return (-IPM_EPSILON * honest.mean(0)).expand(f, -1).clone()
    if name == "label_flip":
        return own  # they trained on flipped labels already
    raise ValueError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}")


def flip_labels(y: torch.Tensor, classes: int) -> torch.Tensor:
    return classes - 1 - y
