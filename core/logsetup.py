"""Logging: a rotating file per profile, and plain warnings on stderr."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def _quiet_libp2p(record: logging.LogRecord) -> bool:
    """py-libp2p logs a peer going away as an ERROR; the gardener's terminal shows only our
    own words (everything stays in the log file)."""
    return not record.name.startswith(("libp2p", "multiaddr", "async_service"))


def setup_logging(log_dir: Path | None, level: str = "INFO", stderr_level: str = "WARNING",
                  ) -> Path | None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.setLevel(logging.DEBUG)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(stderr_level)
    err.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    err.addFilter(_quiet_libp2p)
    root.addHandler(err)
    path = None
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            path = log_dir / "grove.log"
            fh = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3,
                                                      encoding="utf-8")
            fh.setLevel(level)
            fh.setFormatter(logging.Formatter(FORMAT))
            root.addHandler(fh)
        except OSError as e:
            logging.getLogger(__name__).warning("cannot write logs to %s (%s)", log_dir, e)
            path = None
    from core.net.logs import route_libp2p_logs

    route_libp2p_logs()
    return path
