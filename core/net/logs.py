"""Route py-libp2p's log records into ours (it sets propagate=False on import)."""

from __future__ import annotations

import logging

_NAMES = ("libp2p", "multiaddr", "async_service")


def route_libp2p_logs(level: int = logging.WARNING) -> None:
    import logging as _logging

    import libp2p  # noqa: F401  -- import first: it configures its logger on import

    names = [n for n in _logging.root.manager.loggerDict if n.split(".")[0] in _NAMES]
    for name in [*_NAMES, *names]:
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True
        lg.setLevel(level if name in _NAMES else logging.NOTSET)
