"""Byzantine-robust aggregation rules: pure torch over a stack of n vectors, shape (n, d).

Every rule takes `f`, the number of Byzantine (arbitrary, colluding) inputs it must tolerate,
states in its docstring the bound under which it does, and refuses inputs below that bound
with `TooFewInputs` (a clear error rather than a quietly broken aggregate). Inputs must be
finite: NaN/Inf are refused by the averaging wire long before they get here, and refused
here too.

Robust rules count each input once; per-input weights are for the mean alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor


class TooFewInputs(ValueError):
    """A rule was asked to tolerate more Byzantine inputs than its bound allows."""


def _check(stack: Tensor, f: int, need: int, name: str, bound: str) -> None:
    if stack.dim() != 2 or stack.shape[0] == 0:
        raise ValueError(f"{name}: expected a stack of shape (n, d) with n >= 1, got "
                         f"{tuple(stack.shape)}")
    if f < 0:
        raise ValueError(f"{name}: f must be >= 0, got {f}")
    if not torch.isfinite(stack).all():
        raise ValueError(f"{name}: the inputs hold NaN or Inf")
    n = stack.shape[0]
    if n < need:
        raise TooFewInputs(f"{name} tolerates f={f} Byzantine inputs only with {bound} "
                           f"(n >= {need}); got n={n}")


def _work(stack: Tensor) -> Tensor:
    return stack.to(torch.float64)


def _canonical(x: Tensor) -> Tensor:
    """The rows in an order that does not depend on the order they came in (by a fixed random
    projection; only identical rows tie, and those are interchangeable): rules that pick
    inputs break ties the same way however the inputs are listed."""
    proj = torch.randn(x.shape[1], generator=torch.Generator().manual_seed(0x6120),
                       dtype=torch.float64)
    return x[torch.argsort(x @ proj, stable=True)]


# -- the rules -------------------------------------------------------------------------------
def mean(stack: Tensor, f: int = 0, weights: Tensor | None = None) -> Tensor:
    """Weighted mean. Tolerates no Byzantine input (breakdown point 0: one input moves it
    arbitrarily far), so it refuses f > 0."""
    if f > 0:
        raise TooFewInputs(f"mean tolerates no Byzantine input (asked f={f}); choose a robust "
                           "rule")
    _check(stack, 0, 1, "mean", "any n")
    x = _work(stack)
    if weights is None:
        return x.mean(0).to(stack.dtype)
    w = weights.to(torch.float64).reshape(-1)
    if w.shape[0] != x.shape[0] or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("mean: one finite weight >= 0 per input, not all zero")
    return ((w[:, None] * x).sum(0) / w.sum()).to(stack.dtype)


def median(stack: Tensor, f: int = 0) -> Tensor:
    """Coordinate-wise median. Tolerates f Byzantine inputs when n >= 2f + 1; every coordinate
    of the result then lies within the honest inputs' range (their bounding box). With an even
    n, the mean of the two middle values."""
    _check(stack, f, 2 * f + 1, "median", "n >= 2f + 1")
    x = _work(stack).sort(0).values
    n = x.shape[0]
    mid = (x[(n - 1) // 2] + x[n // 2]) / 2
    return mid.to(stack.dtype)


def trimmed_mean(stack: Tensor, f: int = 0, beta: float | None = None) -> Tensor:
    """Coordinate-wise trimmed mean: per coordinate the b largest and b smallest values are
    dropped and the rest averaged, with b = max(f, ceil(beta * n)). Tolerates f Byzantine
    inputs when n >= 2f + 1 (and b <= (n - 1) / 2); each coordinate then lies within the honest
    inputs' range."""
    n = stack.shape[0] if stack.dim() == 2 else 0
    b = f if beta is None else max(f, math.ceil(beta * n))
    if beta is not None and not 0 <= beta < 0.5:
        raise ValueError(f"trimmed_mean: beta must be in [0, 0.5), got {beta}")
    _check(stack, f, 2 * b + 1, "trimmed_mean", f"n >= 2b + 1 with b = {b} trimmed per side")
    x = _work(stack).sort(0).values
    return x[b:n - b].mean(0).to(stack.dtype)


def _krum_scores(x: Tensor, f: int) -> Tensor:
    """Each input's Krum score: the sum of squared distances to its n - f - 2 nearest others."""
    n = x.shape[0]
    d2 = torch.cdist(x, x).pow(2)
    d2.fill_diagonal_(float("inf"))
    nearest = d2.sort(1).values[:, : n - f - 2]
    return nearest.sum(1)


def krum(stack: Tensor, f: int = 0) -> Tensor:
    """Krum (Blanchard et al., 2017): the input whose n - f - 2 nearest neighbours are closest.
    Tolerates f Byzantine inputs when n >= 2f + 3. The result is one of the inputs (ties go to
    one input, chosen the same way whatever order the inputs came in)."""
    _check(stack, f, 2 * f + 3, "krum", "n >= 2f + 3")
    x = _canonical(_work(stack))
    scores = _krum_scores(x, f)
    return x[int(torch.argmin(scores))].to(stack.dtype)


def multi_krum(stack: Tensor, f: int = 0, m: int | None = None) -> Tensor:
    """Multi-Krum: the mean of the m inputs with the best Krum scores (m = n - f by default).
    Tolerates f Byzantine inputs when n >= 2f + 3 and 1 <= m <= n - f."""
    _check(stack, f, 2 * f + 3, "multi_krum", "n >= 2f + 3")
    n = stack.shape[0]
    m = n - f if m is None else m
    if not 1 <= m <= n - f:
        raise ValueError(f"multi_krum: m must be in 1..n - f = {n - f}, got {m}")
    x = _canonical(_work(stack))
    best = torch.argsort(_krum_scores(x, f), stable=True)[:m]
    return x[best].mean(0).to(stack.dtype)


def bulyan(stack: Tensor, f: int = 0) -> Tensor:
    """Bulyan (El Mhamdi et al., 2018): Krum picks theta = n - 2f inputs one at a time, then
    per coordinate the beta = theta - 2f values closest to their median are averaged.
    Tolerates f Byzantine inputs when n >= 4f + 3; each coordinate then lies within the honest
    inputs' range."""
    _check(stack, f, 4 * f + 3, "bulyan", "n >= 4f + 3")
    x = _canonical(_work(stack))
    n = x.shape[0]
    theta, beta = n - 2 * f, n - 4 * f
    left = list(range(n))
    picked: list[int] = []
    while len(picked) < theta:
        sub = x[left]
        # Krum over what is left; with fewer than 2f + 3 left, the closest-to-all wins
        k = max(0, min(f, len(left) - 3))
        scores = _krum_scores(sub, k) if len(left) >= 3 else torch.zeros(len(left))
        i = int(torch.argmin(scores))
        picked.append(left.pop(i))
    sel = x[picked]
    med = sel.median(0).values
    order = (sel - med).abs().argsort(dim=0, stable=True)[:beta]
    return torch.gather(sel, 0, order).mean(0).to(stack.dtype)


def signsgd_mv(stack: Tensor, f: int = 0) -> Tensor:
    """SignSGD with majority vote (Bernstein et al., 2019): per coordinate the sign most inputs
    agree on, scaled by the coordinate's median magnitude (so the result is a drop-in for a
    gradient and identical inputs return that input). Tolerates f Byzantine inputs when
    n >= 2f + 1 and the honest inputs agree on a coordinate's sign by more than 2f votes; the
    magnitude is then within the honest magnitudes' range. No bounding-box guarantee where
    honest inputs disagree in sign."""
    _check(stack, f, 2 * f + 1, "signsgd_mv", "n >= 2f + 1")
    x = _work(stack)
    vote = torch.sign(torch.sign(x).sum(0))
    return (vote * x.abs().median(0).values).to(stack.dtype)


def centered_clip(stack: Tensor, f: int = 0, tau: float | None = None, iters: int = 3,
                  center: Tensor | None = None) -> Tensor:
    """Centered clipping (Karimireddy et al., 2021): starting from `center` (the previous
    aggregate, which carries momentum across steps; the coordinate-wise median when None),
    repeat v <- v + mean_i clip(x_i - v, tau). `tau` None: the median distance of the inputs
    from v, each iteration (adaptive). Tolerates a Byzantine fraction f/n < 1/2 (n >= 2f + 1;
    the proofs need f/n well below, ~0.1-0.2); the result moves at most tau * f/n per iteration
    towards any Byzantine input."""
    _check(stack, f, 2 * f + 1, "centered_clip", "n >= 2f + 1")
    if iters < 1:
        raise ValueError(f"centered_clip: iters must be >= 1, got {iters}")
    if tau is not None and not tau > 0:
        raise ValueError(f"centered_clip: tau must be > 0, got {tau}")
    x = _work(stack)
    if center is None:
        v = x.median(0).values
    else:
        v = center.to(torch.float64).reshape(-1)
        if v.shape[0] != x.shape[1] or not torch.isfinite(v).all():
            raise ValueError("centered_clip: the center must be a finite vector of length d")
    for _ in range(iters):
        diff = x - v
        norms = diff.norm(dim=1)
        t = float(norms.median()) if tau is None else tau
        if t <= 0:
            break
        scale = torch.clamp(t / norms.clamp_min(1e-300), max=1.0)
        v = v + (diff * scale[:, None]).mean(0)
    return v.to(stack.dtype)


def geometric_median(stack: Tensor, f: int = 0, iters: int = 100, eps: float = 1e-8) -> Tensor:
    """Geometric median by smoothed Weiszfeld iterations: the point minimising the sum of
    Euclidean distances to the inputs. Breakdown point 1/2: tolerates f Byzantine inputs when
    n >= 2f + 1, the result staying within a bounded distance of the honest inputs whatever the
    Byzantine ones send."""
    _check(stack, f, 2 * f + 1, "geometric_median", "n >= 2f + 1")
    x = _work(stack)
    v = x.median(0).values
    for _ in range(iters):
        w = 1.0 / (x - v).norm(dim=1).clamp_min(eps)
        nxt = (w[:, None] * x).sum(0) / w.sum()
        moved = float((nxt - v).norm())
        v = nxt
        if moved <= eps * max(1.0, float(v.norm())):
            break
    return v.to(stack.dtype)


# -- the registry and the fallback ------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    name: str
    fn: Callable[..., Tensor]
    min_inputs: Callable[[int], int]   # n needed to tolerate f
    in_honest_box: bool                # each coordinate stays within the honest inputs' range
    robust: bool                       # bounded whatever one input sends


RULES: dict[str, Rule] = {r.name: r for r in (
    Rule("mean", mean, lambda f: 1 if f == 0 else 10**9, False, False),
    Rule("median", median, lambda f: 2 * f + 1, True, True),
    Rule("trimmed_mean", trimmed_mean, lambda f: 2 * f + 1, True, True),
    Rule("krum", krum, lambda f: 2 * f + 3, False, True),
    Rule("multi_krum", multi_krum, lambda f: 2 * f + 3, False, True),
    Rule("bulyan", bulyan, lambda f: 4 * f + 3, True, True),
    Rule("signsgd_mv", signsgd_mv, lambda f: 2 * f + 1, False, True),
    Rule("centered_clip", centered_clip, lambda f: 2 * f + 1, False, True),
    Rule("geometric_median", geometric_median, lambda f: 2 * f + 1, False, True),
)}

# what a rule falls back to when a group is too small for it: the next rule that needs fewer
# inputs for the same f, ending at the coordinate-wise median (n >= 2f + 1)
FALLBACK = {"bulyan": "multi_krum", "multi_krum": "krum", "krum": "median",
            "trimmed_mean": "median", "signsgd_mv": "median", "centered_clip": "median",
            "geometric_median": "median"}


def choose(rule: str, n: int, f: int) -> tuple[str, int, str]:
    """The rule to use for n inputs when `rule` was asked to tolerate f: the rule itself when n
    allows it, else the first fallback that does; when none does, the median with the largest
    f that n allows ((n - 1) // 2). Returns (rule, f, why) - `why` empty when nothing changed."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; known: {', '.join(RULES)}")
    name = rule
    while True:
        if n >= RULES[name].min_inputs(f):
            why = "" if name == rule else (
                f"{rule} needs n >= {RULES[rule].min_inputs(f)} to tolerate f={f}; "
                f"{n} inputs, so {name}")
            return name, f, why
        if name not in FALLBACK:
            break
        name = FALLBACK[name]
    if rule == "mean":
        return "mean", 0, ""
    g = max(0, (n - 1) // 2)
    return "median", g, (f"{n} inputs cannot tolerate f={f} with any rule; median tolerating "
                         f"f={g}")


def aggregate(rule: str, stack: Tensor, f: int, **params: object) -> tuple[Tensor, str, str]:
    """Aggregate with `rule`, falling back as `choose` says. Returns (result, rule used, why)."""
    name, g, why = choose(rule, stack.shape[0], f)
    fn = RULES[name].fn
    kwargs = {k: v for k, v in params.items() if name == rule}  # params belong to the asked rule
    return fn(stack, g, **kwargs), name, why
