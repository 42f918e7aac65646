"""Benchmarks: `python -m bench.NAME --json` prints one JSON object."""

import json
from typing import Any


def print_result(result: dict[str, Any], as_json: bool) -> None:
    """One JSON object (`--json`), or one aligned `field: value` line per field."""
    if as_json:
        print(json.dumps(result))
        return
    for k, v in result.items():
        print(f"{k:>22}: {v}")


def run_quiet(async_fn: Any, *args: Any, **run_kw: Any) -> Any:
    """`trio.run(async_fn, *args, **run_kw)` with logging, py-libp2p's included, silenced: a
    bench's output is its own lines and its JSON object."""
    import logging

    import trio

    from core.net.logs import route_libp2p_logs

    logging.basicConfig(level=logging.CRITICAL)
    route_libp2p_logs(logging.CRITICAL)
    return trio.run(async_fn, *args, **run_kw)


def spread(values: list[float], digits: int = 3) -> dict[str, float]:
    """min / median / max of repeated measurements (goals are held at the median)."""
    import statistics

    if not values:
        raise ValueError("no measurements")
    return {"min": round(min(values), digits), "median": round(statistics.median(values), digits),
            "max": round(max(values), digits)}


def over_repeats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from `runs` of the same benchmark: every number the median over the runs
    (a goal is held at the median, never at the best run), with `repeats` and, under
    `spread`, the min / median / max of each number that varied. Other fields (text, flags,
    lists) are the first run's."""
    import statistics

    out: dict[str, Any] = dict(runs[0])
    varied: dict[str, dict[str, float]] = {}
    for k, v in runs[0].items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        values = [r[k] for r in runs if isinstance(r.get(k), int | float)]
        if len(set(values)) > 1:
            varied[k] = spread(values, 4)
        med = statistics.median(values)
        out[k] = type(v)(med) if isinstance(v, int) and med == int(med) else round(med, 4)
    out["repeats"] = len(runs)
    out["spread"] = varied
    return out
