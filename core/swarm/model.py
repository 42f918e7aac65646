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
from collections.abc import Iterable
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

    def step(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """`forward` for new positions `x` (batch, n, hidden) after the `past` ones, whose
        keys and values are cached (generation: each position is computed once). Returns the
        outputs and the cache grown by the new positions; the same numbers as `forward` on
        the whole sequence, up to float rounding."""
        attn = self.attn
        b, n, d = x.shape
        heads = attn.num_heads
        q, k, v = nn.functional.linear(self.norm1(x), attn.in_proj_weight,
                                       attn.in_proj_bias).chunk(3, dim=-1)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=1), torch.cat([past[1], v], dim=1)
        t = k.shape[1]

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.reshape(b, z.shape[1], heads, d // heads).transpose(1, 2)

        allowed = torch.ones(n, t, dtype=torch.bool, device=x.device).tril(diagonal=t - n)
        a = nn.functional.scaled_dot_product_attention(split(q), split(k), split(v),
                                                       attn_mask=allowed)
        x = x + attn.out_proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x)), (k, v)


def _init(module: nn.Module, seed: int) -> None:
    """Deterministic initial parameters from a generator of the module's own: torch's global
    generator is shared by every thread of the process (several villages in one process, or
    a village's training and serving threads, would otherwise draw each other's numbers)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                bound = 1.0 / m.in_features ** 0.5
                m.weight.uniform_(-bound, bound, generator=g)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=g)
            elif isinstance(m, nn.MultiheadAttention):
                assert m.in_proj_weight is not None and m.in_proj_bias is not None
                bound = (6.0 / (m.in_proj_weight.shape[0] + m.in_proj_weight.shape[1])) ** 0.5
                m.in_proj_weight.uniform_(-bound, bound, generator=g)  # (Xavier, as torch)
                m.in_proj_bias.zero_()
            elif isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, 1.0, generator=g)
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.fill_(0.0)


def build_block(spec: ModelSpec, index: int) -> Block:
    """Block `index` with its deterministic initial parameters."""
    if not 0 <= index < spec.blocks:
        raise ValueError(f"{spec.name} has blocks 0..{spec.blocks - 1}, not {index}")
    block = Block(spec)
    _init(block, _seed(spec.name, "block", index))
    return block


class Embed(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.tokens = nn.Embedding(spec.vocab, spec.hidden)
        self.positions = nn.Parameter(torch.randn(spec.seq, spec.hidden) * 0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tokens(ids) + self.positions[: ids.shape[1]]


def generate_single(blocks: list[Block], prompt: list[int], new_tokens: int, *,
                    embed: Embed, head: Head) -> list[int]:
    """Greedy generation in one process, the whole sequence recomputed for every token: the
    reference the swarm's output must equal."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(new_tokens):
            h = embed(torch.tensor([ids]))
            for b in blocks:
                h = b(h)
            ids.append(int(head(h[:, -1:])[0, -1].argmax()))
    return ids[len(prompt):]


def embed_at(embed: Embed, ids: torch.Tensor, position: int) -> torch.Tensor:
    """The embedding of tokens `ids` (batch, n) placed at `position` onwards."""
    return embed.tokens(ids) + embed.positions[position:position + ids.shape[1]]


class Head(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(spec.hidden)
        self.out = nn.Linear(spec.hidden, spec.vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(x))


def add_grads(sums: list[torch.Tensor] | None, params: Iterable[nn.Parameter]
              ) -> list[torch.Tensor]:
    """`sums` plus the gradients `params` hold now (zeros where one has none): how update
    "global" keeps a period's micro-batches, on a server and at the trainer alike."""
    got = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
           for p in params]
    return got if sums is None else [a.add_(b) for a, b in zip(sums, got, strict=True)]


def build_ends(spec: ModelSpec) -> tuple[Embed, Head]:
    """The client's parts: the embedding and the head (deterministic too)."""
    embed, head = Embed(spec), Head(spec)
    _init(embed, _seed(spec.name, "ends"))
    _init(head, _seed(spec.name, "head"))
    with torch.no_grad():
        embed.positions.copy_(torch.randn(
            spec.seq, spec.hidden, generator=torch.Generator().manual_seed(
                _seed(spec.name, "positions"))) * 0.02)
    return embed, head


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
