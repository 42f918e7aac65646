"""The digits project's collaborative step, driven in process for the villages of a simulated
network, so `bench.adversary` measures what an averaging attack does to honest training
accuracy, not only to round success.

Each round every village takes a few local SGD steps on its shard from the shared step's
parameters, and the villages average their updates over the real averaging service with the
project's rule (`ProjectSpec.rule`, tolerating `f`), keyed and weighted as
`core.training.service` does, with the previous aggregate as the center; each village applies
what its round gave it. Local training runs synchronously in the trio thread: under MockClock
it takes no simulated time, so a seed gives one run. Only honest villages' accuracy is read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from core.training.collab import PROJECTS
from core.training.demo import accuracy, digits_model, load_digits

SPEC = PROJECTS["digits"]
LOCAL_STEPS = 4          # local SGD batches per round and village
MAX_UPDATE_NORM = 1e3    # as the training service: a larger aggregate is not applied


class DigitsRounds:
    """Models of `n` villages (village i: position i of the group) starting from the same
    parameters, each with its shard of the digits training data."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.data = load_digits(seed)
        self.models = [digits_model(seed) for _ in range(n)]
        self.shards = [self.data.shard(i, n) for i in range(n)]
        self.prev: list[np.ndarray | None] = [None] * n
        self.seed = seed
        self.round = 0

    def _params(self, i: int) -> torch.Tensor:
        return torch.nn.utils.parameters_to_vector(self.models[i].parameters()).detach().clone()

    def updates(self) -> list[tuple[np.ndarray, int]]:
        """(update, samples) of each village this round: local SGD from its parameters."""
        out = []
        for i, model in enumerate(self.models):
            start = self._params(i)
            opt = torch.optim.SGD(model.parameters(), lr=SPEC.local_lr, momentum=0.9)
            x, y = self.shards[i]
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.round * 101 + i)
            samples = 0
            for _ in range(LOCAL_STEPS):
                pick = torch.randint(0, len(y), (SPEC.batch,), generator=g)
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x[pick]), y[pick])
                loss.backward()
                opt.step()
                samples += SPEC.batch
            delta = (self._params(i) - start).numpy().astype(np.float32)
            torch.nn.utils.vector_to_parameters(start, model.parameters())
            out.append((delta, samples))
        return out

    def apply(self, i: int, aggregate: np.ndarray) -> bool:
        """Village i takes its round's aggregate (refused when not finite or too large, as
        the service refuses it)."""
        if not np.isfinite(aggregate).all() or float(np.linalg.norm(aggregate)) > MAX_UPDATE_NORM:
            return False
        start = self._params(i)
        torch.nn.utils.vector_to_parameters(start + torch.from_numpy(aggregate),
                                            self.models[i].parameters())
        self.prev[i] = aggregate
        return True

    def accuracy(self, i: int) -> float:
        return accuracy(self.models[i], self.data.x_test, self.data.y_test)

    def average_kwargs(self, i: int, samples: int) -> dict[str, Any]:
        """What the service passes to `average` besides the key and the vector."""
        return {"weight": float(max(samples, 1)), "rule": SPEC.rule, "f": SPEC.f,
                "center": self.prev[i]}
