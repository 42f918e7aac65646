"""The RAM cap, enforced: memory the node's compute will hold is reserved before it is
allocated, and work that would take the total past the cap is refused with the reason (the
caller shrinks it, waits, or skips it and says so).

What is reserved: a SWARM span's blocks (for as long as they are served), a training
project's model and its state downloads, and each averaging round's buffers. The cap is the
governor's (`ram_cap_mb`); lowering it below what is held refuses new work until enough is
released - nothing held is taken away mid-use. Thread-safe: compute threads and the node's
thread reserve from the same budget.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

MIB = 1024 * 1024
# An averaging round holds about this many copies of its vector besides the caller's: the
# parts sent, the parts received for its slice, and the result
ROUND_BUFFERS = 3


class MemoryRefused(Exception):
    """Reserving would take the node's compute past the RAM cap."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Reservation:
    budget: MemoryBudget
    what: str
    nbytes: int
    released: bool = False

    def release(self) -> None:
        self.budget._release(self)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class MemoryBudget:
    def __init__(self, cap_bytes: int | None = None) -> None:
        self.cap = cap_bytes  # None: no cap
        self._held: list[Reservation] = []
        self._lock = threading.Lock()
        self.peak = 0  # the most held at once, bytes
        self.refused = 0  # reservations refused
        self.last_refusal = ""

    def set_cap(self, cap_bytes: int | None) -> None:
        self.cap = cap_bytes

    @property
    def used(self) -> int:
        with self._lock:
            return sum(r.nbytes for r in self._held)

    def held(self) -> list[tuple[str, int]]:
        """(what, bytes) of each reservation held now."""
        with self._lock:
            return [(r.what, r.nbytes) for r in self._held]

    def reserve(self, nbytes: int, what: str) -> Reservation:
        """Hold `nbytes` for `what`; MemoryRefused (with the reason, in words) when that
        would pass the cap. Release it (or use it as a context manager) when freed."""
        nbytes = max(0, int(nbytes))
        with self._lock:
            used = sum(r.nbytes for r in self._held)
            if self.cap is not None and used + nbytes > self.cap:
                self.refused += 1
                self.last_refusal = (
                    f"{what} needs {nbytes / MIB:.1f} MB, and {used / MIB:.1f} of the "
                    f"{self.cap / MIB:.0f} MB memory cap is in use")
                raise MemoryRefused(self.last_refusal)
            r = Reservation(self, what, nbytes)
            self._held.append(r)
            self.peak = max(self.peak, used + nbytes)
            return r

    def room(self) -> int | None:
        """Bytes that may still be reserved (None: no cap)."""
        if self.cap is None:
            return None
        return max(0, self.cap - self.used)

    def _release(self, r: Reservation) -> None:
        with self._lock:
            if not r.released:
                r.released = True
                self._held.remove(r)
