"""A model as a sequence of blocks with stable uids, and the small transformer the swarm serves.

A SWARM model is split the way Petals splits one: the client holds the embedding and the head,
servers hold spans of the transformer blocks in between. Every block's initial parameters come
from a generator seeded by the model name and the block index, so two villages serving the same
block start from the same parameters with nothing downloaded (no hub weights, ever).

torch is imported by the caller's first use of this module: `core.swarm` needs torch, the rest
of the node does not.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    name: str
    vocab: int
    hidden: int
    heads: int
    ffn: int
    blocks: int
    seq: int

    def block_uid(self, index: int) -> str:
        return f"{self.name}.{index}"

    def block_params(self) -> int:
        h, f = self.hidden, self.ffn
        return 4 * h * h + 4 * h + 2 * h * f + h + f + 4 * h  # attention, MLP, two norms

    def block_bytes(self, dtype_bytes: int = 4, train: bool = True) -> int:
        """Memory a served block needs: parameters, and for training their gradients and the
        optimizer's two moments."""
        copies = 4 if train else 1
        return self.block_params() * dtype_bytes * copies


MODELS = {
    # tests and demos: trains in seconds, but too small for compute to outweigh networking
    "tiny-lm": ModelSpec("tiny-lm", vocab=32, hidden=64, heads=4, ffn=128, blocks=8, seq=16),
    # benchmarks: a block's compute outweighs shipping its activations (12 MiB of parameters)
    "small-lm": ModelSpec("small-lm", vocab=64, hidden=512, heads=8, ffn=2048, blocks=8,
                          seq=16),
}


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


class Block(nn.Module):
    """A pre-norm causal transformer block: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(spec.hidden)
        self.attn = nn.MultiheadAttention(spec.hidden, spec.heads, batch_first=True)
        self.norm2 = nn.LayerNorm(spec.hidden)
        self.mlp = nn.Sequential(nn.Linear(spec.hidden, spec.ffn), nn.GELU(),
                                 nn.Linear(spec.ffn, spec.hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool, device=x.device), diagonal=1)
        h = self.norm1(x)
        a, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False)
        x = x + a
        return x + self.mlp(self.norm2(x))


def build_block(spec: ModelSpec, index: int) -> Block:
    """Block `index` with its deterministic initial parameters."""
    if not 0 <= index < spec.blocks:
        raise ValueError(f"{spec.name} has blocks 0..{spec.blocks - 1}, not {index}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed(spec.name, "block", index))
        return Block(spec)


class Embed(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.tokens = nn.Embedding(spec.vocab, spec.hidden)
        self.positions = nn.Parameter(torch.randn(spec.seq, spec.hidden) * 0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tokens(ids) + self.positions[: ids.shape[1]]


class Head(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(spec.hidden)
        self.out = nn.Linear(spec.hidden, spec.vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(x))


def build_ends(spec: ModelSpec) -> tuple[Embed, Head]:
    """The client's parts: the embedding and the head (deterministic too)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed(spec.name, "ends"))
        return Embed(spec), Head(spec)


def synthetic_batch(spec: ModelSpec, batch: int, generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences that count up by a random step (mod vocab): inputs and next tokens.
    A model that has seen two tokens can predict the rest, so the loss falls from ln(vocab)
    towards zero as it learns."""
    start = torch.randint(0, spec.vocab, (batch, 1), generator=generator)
    step = torch.randint(1, 4, (batch, 1), generator=generator)
    seq = (start + step * torch.arange(spec.seq + 1)) % spec.vocab
    return seq[:, :-1], seq[:, 1:]


def chance_loss(spec: ModelSpec) -> float:
    """Cross-entropy of a uniform guess: where an untrained model starts."""
    return math.log(spec.vocab)
