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
