"""Work commitments: what a SWARM server signs with every forward answer, so the work can be
checked by anyone, later, without the server's word. Pure (crypto, no I/O).

A commitment names the server, the model and span, the versions and a sha256 of each block's
parameters that made the answer, and sha256s of the inputs it was given and the output it
returned. The server signs it with its village key (Ed25519 over DOMAIN + body; the peer id
embeds the public key, so a commitment is checked with nothing but itself). A client keeps it
as evidence: a checker recomputes the hop with parameters fetched from *other* servers of the
same blocks whose digest matches the committed one, so a server that lies about its
parameters as consistently as about its outputs no longer passes an independent check (it
committed to parameters no one else holds, or to ones that do not give its output); where no
one else holds them, only the weaker check with its own parameters is possible, and it is
counted apart (`core.swarm.checks`). A referee shown the commitment, the inputs and the output
needs nothing from either party to decide.

Wire form: a `core.signed` envelope, at most MAX_BYTES.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

import msgspec
import numpy as np

from core import signed

VERSION = 1
DOMAIN = b"grove-work:v1\x00"
MAX_BYTES = 8192          # a span of up to 128 blocks' digests
MAX_BLOCKS = 128
CLOCK_SKEW = 60.0


class Work(msgspec.Struct, frozen=True):
    v: int
    server: str
    model: str
    op: str               # "forward"
    start: int
    end: int
    versions: list[int]   # optimizer steps of each block used
    params: list[bytes]   # sha256 of each block's flat float32 parameters
    inputs: bytes         # sha256 of the inputs tensor (wire.digest)
    output: bytes         # sha256 of the output tensor
    at: float


class BadCommit(ValueError):
    """A commitment that does not hold; `str()` says why."""


def params_digest(flat: np.ndarray) -> bytes:
    """sha256 of a block's parameters as they travel: flat little-endian float32."""
    return hashlib.sha256(np.ascontiguousarray(flat, dtype="<f4").tobytes()).digest()


def make(work: Work, sign: Callable[[bytes], bytes]) -> bytes:
    """The signed commitment's bytes; `sign(bytes) -> bytes` is the village key's signer."""
    return signed.seal(work, DOMAIN, sign)


def key(data: bytes) -> bytes:
    """The work's key (of its signed bytes): what names it in a challenge and picks its
    referee."""
    return hashlib.sha256(b"grove-work-key\x00" + data).digest()


def open_signed(data: bytes, now: float) -> Work:
    """The commitment if its shape, figures and signature hold; BadCommit (saying which)."""
    env, w = signed.open_envelope(data, Work, limit=MAX_BYTES, what="commitment",
                                  error=BadCommit)
    if w.v != VERSION:
        raise BadCommit(f"commitment version {w.v} is not supported")
    n = w.end - w.start
    if not (0 <= w.start < w.end and 0 < n <= MAX_BLOCKS):
        raise BadCommit(f"span {w.start}..{w.end} out of range (at most {MAX_BLOCKS} blocks)")
    if len(w.versions) != n or len(w.params) != n:
        raise BadCommit("one version and one parameter digest per block, exactly")
    if any(len(d) != 32 for d in (*w.params, w.inputs, w.output)):
        raise BadCommit("digests are sha256 (32 bytes)")
    if any(not 0 <= x <= 10**9 for x in w.versions):
        raise BadCommit("versions out of range")
    if not (math.isfinite(w.at) and 0 <= w.at <= now + CLOCK_SKEW):
        raise BadCommit("dated in the future, or not a date")
    signed.verify(env, DOMAIN, w.server, "server", BadCommit)
    return w


def expect(w: Work, *, server: str, model: str, start: int, end: int, inputs: bytes,
           output: bytes) -> None:
    """BadCommit unless `w` commits to exactly this hop: this server, span, inputs and
    output (a commitment to other work proves nothing about this one)."""
    if w.server != server:
        raise BadCommit("the commitment names another server")
    if (w.model, w.start, w.end, w.op) != (model, start, end, "forward"):
        raise BadCommit(f"the commitment is for {w.model} {w.start}..{w.end} ({w.op}), "
                        f"not this hop")
    if w.inputs != inputs:
        raise BadCommit("the commitment names other inputs than the ones sent")
    if w.output != output:
        raise BadCommit("the commitment names another output than the one returned")
