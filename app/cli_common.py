"""Helpers shared by the `grove` subcommands."""

from __future__ import annotations

import argparse
from typing import Any


def setup(args: argparse.Namespace) -> Any:
    from core.logsetup import setup_logging
    from core.paths import node_paths

    paths = node_paths(args.profile).ensure()
    setup_logging(paths.log_dir, stderr_level="INFO" if args.verbose else "WARNING")
    return paths
