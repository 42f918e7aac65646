"""`/grove/swarm/1.0.0`: forward and backward through a server's span of blocks.

One request per stream round trip, in length-prefixed frames (`core.net.framing`): the client
sends a msgpack `SwarmRequest`, the server answers with a `SwarmAnswer` - the output tensor, or
an error in words. Tensors travel as dtype + shape + raw little-endian bytes and are rebuilt
with `numpy.frombuffer`; nothing a peer sends is ever unpickled or `torch.load`ed. Every
tensor is checked here, before any compute: dtype in the allowed set, shape of the expected
rank and within the caps, byte count matching the shape, every value finite.
"""

from __future__ import annotations

import hashlib
import math
import re

import msgspec
import numpy as np

VERSION = 1
PROTOCOL = "/grove/swarm/1.0.0"
MAX_FRAME = 32 * 2**20         # bytes of one request or answer (a small-lm block: 12.6 MB)
MAX_BATCH = 1024
MAX_SEQ = 512
MAX_HIDDEN = 8192
DTYPES = {"float32": np.float32}
OPS = ("forward", "backward", "params", "infer")
SESSION = re.compile(r"[A-Za-z0-9_-]{1,64}")


class WireTensor(msgspec.Struct, frozen=True):
    dtype: str
    shape: list[int]
    data: bytes


class SwarmRequest(msgspec.Struct, frozen=True):
    v: int
    op: str                      # "forward", "backward" or "params"
    model: str
    start: int                   # first block of the span asked for
    end: int                     # one past the last ("params": one block, start + 1)
    inputs: WireTensor | None = None  # activations entering block `start`: (batch, seq, hidden)
    grad: WireTensor | None = None  # backward: d loss / d outputs, shaped like the outputs
    train: bool = True           # backward: the server may update its blocks with it
    session: str = ""            # infer: the client's generation session (SESSION pattern)
    position: int = 0            # infer: where `inputs` start in the session (0: afresh)


class SwarmAnswer(msgspec.Struct, frozen=True):
    v: int
    ok: bool
    error: str = ""
    output: WireTensor | None = None  # forward: outputs; backward: d loss / d inputs;
    #                                   params: the block's parameters, flat
    queue: int = 0               # requests waiting at the server (a hint for the client)
    versions: list[int] = []     # forward, params: optimizer steps of each block used
    commit: bytes = b""          # forward: the server's signed commitment (core.swarm.commit)


class BadTensor(ValueError):
    """A tensor that must not be computed on; `str()` says why."""


def digest(t: WireTensor) -> bytes:
    """sha256 of a tensor as it travels: dtype, shape and bytes (a reshape is another one)."""
    h = hashlib.sha256(f"{t.dtype}|{','.join(map(str, t.shape))}|".encode())
    h.update(t.data)
    return h.digest()


def encode_tensor(array: np.ndarray) -> WireTensor:
    a = np.ascontiguousarray(array, dtype=np.float32)
    return WireTensor("float32", list(a.shape), a.astype("<f4", copy=False).tobytes())


def decode_tensor(t: WireTensor, hidden: int, batch_seq: tuple[int, int] | None = None
                  ) -> np.ndarray:
    """The array, or BadTensor: (batch, seq, hidden) float32 within the caps, finite, and
    when `batch_seq` is given, of exactly that batch and sequence length."""
    if t.dtype not in DTYPES:
        raise BadTensor(f"dtype {t.dtype!r} is not one of {sorted(DTYPES)}")
    if len(t.shape) != 3:
        raise BadTensor(f"expected (batch, seq, hidden), got a shape of rank {len(t.shape)}")
    b, s, h = t.shape
    if not (0 < b <= MAX_BATCH and 0 < s <= MAX_SEQ and 0 < h <= MAX_HIDDEN):
        raise BadTensor(f"shape {t.shape} is outside the caps "
                        f"({MAX_BATCH}, {MAX_SEQ}, {MAX_HIDDEN})")
    if h != hidden:
        raise BadTensor(f"hidden size {h} does not match the model's {hidden}")
    if batch_seq is not None and (b, s) != batch_seq:
        raise BadTensor(f"batch and sequence {(b, s)} do not match the inputs' {batch_seq}")
    want = math.prod(t.shape) * 4
    if len(t.data) != want:
        raise BadTensor(f"{len(t.data)} bytes for a shape that needs {want}")
    a = np.frombuffer(t.data, dtype="<f4").reshape(b, s, h)
    if not np.isfinite(a).all():
        raise BadTensor("NaN or infinite values")
    return a


def encode_flat(values: np.ndarray) -> WireTensor:
    a = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
    return WireTensor("float32", [int(a.size)], a.tobytes())


def decode_flat(t: WireTensor, size: int) -> np.ndarray:
    """A block's parameters: exactly `size` finite float32 values, or BadTensor."""
    if t.dtype not in DTYPES or t.shape != [size] or len(t.data) != size * 4:
        raise BadTensor(f"parameters of shape {t.shape[:4]} ({t.dtype}); expected [{size}] "
                        "float32")
    a = np.frombuffer(t.data, dtype="<f4")
    if not np.isfinite(a).all():
        raise BadTensor("NaN or infinite parameters")
    return a.copy()


_request = msgspec.msgpack.Decoder(SwarmRequest)
_answer = msgspec.msgpack.Decoder(SwarmAnswer)


class BadMessage(ValueError):
    pass


def decode_request(data: bytes) -> SwarmRequest:
    try:
        r = _request.decode(data)
    except msgspec.DecodeError as e:
        raise BadMessage(f"malformed request: {e}") from None
    if r.v != VERSION:
        raise BadMessage(f"request version {r.v} is not supported (this server speaks "
                         f"{VERSION})")
    if r.op not in OPS:
        raise BadMessage(f"unknown operation {r.op!r}")
    if r.op != "params" and r.inputs is None:
        raise BadMessage(f"a {r.op} request carries its inputs")
    if r.op == "backward" and r.grad is None:
        raise BadMessage("a backward request carries the outputs' gradient")
    if r.op == "params" and r.end != r.start + 1:
        raise BadMessage("parameters are asked for one block at a time")
    if r.op == "infer" and not SESSION.fullmatch(r.session):
        raise BadMessage("an infer request names its session (1 to 64 letters, digits, _ -)")
    if not 0 <= r.position <= MAX_SEQ:
        raise BadMessage(f"position {r.position} is out of range (0..{MAX_SEQ})")
    if not 0 <= r.start < r.end <= 4096:
        raise BadMessage(f"no such span {r.start}..{r.end}")
    return r


def decode_answer(data: bytes) -> SwarmAnswer:
    try:
        a = _answer.decode(data)
    except msgspec.DecodeError as e:
        raise BadMessage(f"malformed answer: {e}") from None
    if a.v != VERSION:
        raise BadMessage(f"answer version {a.v} is not supported")
    if not 0 <= a.queue < 1_000_000 or len(a.error) > 1024 or len(a.versions) > 4096 or \
            any(not 0 <= x <= 10**9 for x in a.versions) or len(a.commit) > 8192:
        raise BadMessage("answer figures out of range (queue, error, versions, commitment)")
    return a


def encode(msg: SwarmRequest | SwarmAnswer) -> bytes:
    return msgspec.msgpack.encode(msg)
