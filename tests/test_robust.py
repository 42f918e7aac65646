"""Byzantine-robust rules: bounds, invariances, the honest bounding box, resistance to one huge
input, and the fallback when a group is too small."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from core.robust import RULES, TooFewInputs, aggregate, choose
from core.robust import rules as R

ROBUST = [name for name, r in RULES.items() if r.robust]
BOX = [name for name, r in RULES.items() if r.in_honest_box]


def call(name: str, x: torch.Tensor, f: int) -> torch.Tensor:
    return RULES[name].fn(x, f)


def honest_stack(draw_n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(draw_n, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("name", [n for n in RULES if n != "mean"])
def test_each_rule_refuses_inputs_below_its_bound(name: str) -> None:
    f = 2
    need = RULES[name].min_inputs(f)
    x = honest_stack(need, 5, 1)
    call(name, x, f)  # at the bound: fine
    refusal = rf"{name} tolerates f=2 .*n >= {need}.*got n={need - 1}"
    with pytest.raises(TooFewInputs, match=refusal):
        call(name, x[: need - 1], f)


def test_the_documented_bounds() -> None:
    assert {n: RULES[n].min_inputs(3) for n in RULES if n != "mean"} == {
        "median": 7, "trimmed_mean": 7, "krum": 9, "multi_krum": 9, "bulyan": 15,
        "signsgd_mv": 7, "centered_clip": 7, "geometric_median": 7}
    with pytest.raises(TooFewInputs, match="mean tolerates no Byzantine input"):
        R.mean(honest_stack(5, 3, 0), 1)


@pytest.mark.parametrize("name", list(RULES))
def test_nan_and_bad_shapes_are_refused(name: str) -> None:
    x = honest_stack(9, 4, 2)
    x[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        call(name, x, 0)
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        call(name, torch.zeros(3), 0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(7, 12), d=st.integers(1, 6))
@pytest.mark.parametrize("name", list(RULES))
def test_permutation_invariance(name: str, seed: int, n: int, d: int) -> None:
    x = honest_stack(n, d, seed)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    a, b = call(name, x, 1 if name != "mean" else 0), call(name, x[perm], 1 if name != "mean"
                                                            else 0)
    assert torch.allclose(a, b, atol=1e-6, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(v=arrays(np.float64, st.integers(1, 8), elements=st.floats(-1e6, 1e6)),
       n=st.integers(7, 10))
@pytest.mark.parametrize("name", list(RULES))
def test_identical_inputs_return_that_input(name: str, v: np.ndarray, n: int) -> None:
    x = torch.from_numpy(np.tile(v, (n, 1)))
    out = call(name, x, 1 if name != "mean" else 0)
    assert torch.allclose(out, torch.from_numpy(v), atol=1e-9, rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), f=st.integers(1, 2), d=st.integers(1, 5),
       attack=st.sampled_from(["huge", "opposite", "spread"]))
@pytest.mark.parametrize("name", BOX)
def test_box_rules_stay_within_the_honest_inputs_range(name: str, seed: int, f: int, d: int,
                                                       attack: str) -> None:
    n = RULES[name].min_inputs(f) + 1
    honest = honest_stack(n - f, d, seed)
    g = torch.Generator().manual_seed(seed + 7)
    byz = {"huge": torch.full((f, d), 1e12, dtype=torch.float64),
           "opposite": -50 * honest.abs().max() * torch.ones(f, d, dtype=torch.float64),
           "spread": 1e6 * torch.randn(f, d, generator=g, dtype=torch.float64)}[attack]
    out = call(name, torch.cat([honest, byz]), f)
    lo, hi = honest.min(0).values, honest.max(0).values
    assert bool(((out >= lo - 1e-9) & (out <= hi + 1e-9)).all())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), big=st.floats(1e3, 1e30), d=st.integers(1, 6))
@pytest.mark.parametrize("name", ROBUST)
def test_one_arbitrarily_large_input_cannot_drag_a_robust_rule(name: str, seed: int, big: float,
                                                             d: int) -> None:
    n = RULES[name].min_inputs(1) + 2
    honest = honest_stack(n - 1, d, seed)
    bad = torch.full((1, d), big, dtype=torch.float64)
    out = call(name, torch.cat([honest, bad]), 1)
    assert float(out.norm()) <= 3 * float(honest.norm(dim=1).max()) + 1e-9


def test_the_mean_is_dragged_by_that_input() -> None:
    honest = honest_stack(8, 3, 3)
    out = R.mean(torch.cat([honest, torch.full((1, 3), 1e9, dtype=torch.float64)]))
    assert float(out.norm()) > 1e8


def test_known_values() -> None:
    x = torch.tensor([[1.0], [2.0], [3.0], [100.0]])
    assert R.median(x, 1).item() == 2.5
    assert R.trimmed_mean(x, 1).item() == 2.5
    assert R.mean(x, 0, weights=torch.tensor([1.0, 1.0, 2.0, 0.0])).item() == 2.25
    cluster = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.1], [0.05, 0.05],
                            [50.0, 50.0]])
    assert R.krum(cluster, 1).tolist() == cluster[4].tolist()  # exactly one of the inputs
    assert R.multi_krum(cluster, 1).tolist() == pytest.approx([0.05, 0.05])
    assert R.signsgd_mv(torch.tensor([[1.0, -2.0], [3.0, -1.0], [-5.0, -3.0]]), 1).tolist() \
        == [3.0, -2.0]
    line = torch.tensor([[0.0], [1.0], [2.0], [3.0], [1000.0]])
    assert R.geometric_median(line, 2).item() == pytest.approx(2.0, abs=1e-4)
    # with a clipping radius no input exceeds, centered clipping is the plain mean
    assert R.centered_clip(line[:4], 1, tau=1e9, iters=1).item() == pytest.approx(1.5)
    # from the previous aggregate, an outlier moves it by at most tau/n per iteration
    moved = R.centered_clip(torch.tensor([[0.0], [0.0], [0.0], [0.0], [1e6]]), 2, tau=1.0,
                            iters=1, center=torch.tensor([0.0]))
    assert moved.item() == pytest.approx(0.2)


def test_parameters_are_checked() -> None:
    x = honest_stack(9, 3, 4)
    with pytest.raises(ValueError, match="beta must be in"):
        R.trimmed_mean(x, 1, beta=0.5)
    assert torch.allclose(R.trimmed_mean(x, 1, beta=0.3), R.trimmed_mean(x, 3))
    with pytest.raises(ValueError, match="m must be in"):
        R.multi_krum(x, 1, m=9)
    with pytest.raises(ValueError, match="tau must be > 0"):
        R.centered_clip(x, 1, tau=0.0)
    with pytest.raises(ValueError, match="center must be"):
        R.centered_clip(x, 1, center=torch.zeros(2))


def test_a_group_too_small_for_the_rule_falls_back_and_says_so() -> None:
    assert choose("bulyan", 7, 1) == ("bulyan", 1, "")
    name, f, why = choose("bulyan", 6, 1)
    assert (name, f) == ("multi_krum", 1) and "bulyan needs n >= 7 to tolerate f=1" in why
    assert choose("krum", 4, 1)[:2] == ("median", 1)
    assert choose("centered_clip", 4, 1)[:2] == ("centered_clip", 1)
    name, f, why = choose("centered_clip", 2, 1)
    assert (name, f) == ("median", 0) and "cannot tolerate f=1" in why
    assert choose("mean", 3, 1) == ("mean", 0, "")
    with pytest.raises(ValueError, match="unknown rule 'avg'"):
        choose("avg", 3, 0)
    out, used, why = aggregate("krum", torch.tensor([[1.0], [2.0], [30.0]]), 1)
    assert used == "median" and out.item() == 2.0 and why
