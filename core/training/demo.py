"""The demo training projects shipped with the app, deterministic with a seed.

- **digits**: a small MLP on scikit-learn's bundled 8x8 digits (1797 images; nothing is
  downloaded), split 80/20 into train and test by a seeded permutation, the training part
  sharded by village.
- **synthetic**: a linear model on generated data whose parameter count is chosen, to stress
  averaging with large vectors.

Torch only; no I/O beyond reading the bundled data file.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np
import torch

from core.training.digits import DataMissing, digits_file

DIGITS_FEATURES = 64
DIGITS_CLASSES = 10


@dataclass(frozen=True)
class Dataset:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def shard(self, index: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Village `index` of `count`'s share of the training data (every sample in exactly
        one shard)."""
        if not 0 <= index < count:
            raise ValueError(f"shard {index} of {count}")
        return self.x_train[index::count], self.y_train[index::count]


def load_digits(seed: int = 0, test_share: float = 0.2) -> Dataset:
    with gzip.open(digits_file(), "rt") as fh:
        raw = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    if raw.shape != (1797, DIGITS_FEATURES + 1):
        raise DataMissing(f"unexpected digits data of shape {raw.shape}")
    x = torch.from_numpy(raw[:, :DIGITS_FEATURES] / 16.0)
    y = torch.from_numpy(raw[:, DIGITS_FEATURES].astype(np.int64))
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(len(y) * (1 - test_share))
    tr, te = order[:cut], order[cut:]
    return Dataset(x[tr], y[tr], x[te], y[te])


def _init(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The same parameters in every village, from a generator of its own (torch's global
    seed is shared by every thread of the process)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                bound = 1.0 / m.in_features ** 0.5
                m.weight.uniform_(-bound, bound, generator=g)
                m.bias.uniform_(-bound, bound, generator=g)
    return model


def digits_model(seed: int = 0, hidden: int = 64) -> torch.nn.Module:
    return _init(torch.nn.Sequential(torch.nn.Linear(DIGITS_FEATURES, hidden), torch.nn.ReLU(),
                                     torch.nn.Linear(hidden, DIGITS_CLASSES)), seed)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def synthetic(seed: int, params: int, samples: int = 4096) -> tuple[Dataset, torch.nn.Module]:
    """A linear regression with `params` weights whose truth is known: the target is x @ w*
    plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    features = max(1, params - 1)
    w = torch.randn(features, 1, generator=g) / features ** 0.5
    x = torch.randn(samples, features, generator=g)
    y = x @ w + 0.01 * torch.randn(samples, 1, generator=g)
    cut = samples * 4 // 5
    model = _init(torch.nn.Linear(features, 1), seed)
    return Dataset(x[:cut], y[:cut], x[cut:], y[cut:]), model
