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
