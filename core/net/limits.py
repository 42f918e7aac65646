"""Two limits py-libp2p 0.8.1 lacks, applied to every host this process opens.

- **multistream-select reads are capped** (advisory GHSA-hmjq-g7pp-rw3x, fixed only in
  0.8.2, which the package registry here does not carry): 0.8.1 reads a negotiation message
  of whatever length its varint prefix claims, so one connection could make a village buffer
  gigabytes before any handshake. A message is a protocol id and a newline; past
  `MAX_NEGOTIATION` bytes the negotiation fails at once.
- **Yamux's receive window is enforced**: 0.8.1 logs a peer that sends past the window it
  was given and keeps buffering. `core.net.yamux` reports such a peer here (an offence: no
  correct implementation does it) and closes the connection.
"""

from __future__ import annotations

from libp2p.exceptions import ParseError
from libp2p.io.exceptions import IOException
from libp2p.protocol_muxer import multiselect_communicator as msc
from libp2p.utils.varint import read_varint_prefixed_bytes_limited

MAX_NEGOTIATION = 1024  # bytes of one multistream-select message (a protocol id is ~30)


async def _capped_read(self: msc.MultiselectCommunicator) -> str:
    try:
        data = await read_varint_prefixed_bytes_limited(self.read_writer, MAX_NEGOTIATION)
    except (ParseError, IOException, ValueError) as error:  # MessageTooLarge: an IOException
        raise msc.MultiselectCommunicatorError(
            f"fail to read from multiselect communicator: {error}") from error
    if not data or data[-1:] != b"\n":
        raise msc.MultiselectCommunicatorError("a multistream-select message without its "
                                               "newline")
    return data[:-1].decode(errors="replace")


def install() -> None:
    msc.MultiselectCommunicator.read = _capped_read  # type: ignore[method-assign]
