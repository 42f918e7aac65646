"""Text in and out of a SWARM model: one character per token, from a fixed alphabet as large
as the model's vocabulary. Pure; no torch.

The swarm's models are small and defined in code, with vocabularies of 32 or 64 tokens, so a
character alphabet is the whole tokenizer: "tiny-lm" reads lower-case letters, the space and
five punctuation marks; "small-lm" reads both cases, digits, the space and the full stop.
Text a model cannot read is refused with the characters named, never silently changed,
except that a model without capitals reads capitals as lower case.
"""

from __future__ import annotations

import string

from core.errors import GardenerError

_ALPHABETS = {
    32: " " + string.ascii_lowercase + ".,?!'",
    64: " " + string.ascii_lowercase + string.ascii_uppercase + string.digits + ".",
}
for _size, _chars in _ALPHABETS.items():
    assert len(_chars) == len(set(_chars)) == _size, _size


class TextNotReadable(GardenerError):
    pass


def alphabet(vocab: int) -> str:
    try:
        return _ALPHABETS[vocab]
    except KeyError:
        raise ValueError(f"no alphabet of {vocab} characters") from None


def encode(text: str, vocab: int) -> list[int]:
    chars = alphabet(vocab)
    if not any(c.isupper() for c in chars):
        text = text.lower()
    index = {c: i for i, c in enumerate(chars)}
    bad = sorted({c for c in text if c not in index})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:10])
        raise TextNotReadable(f"The model cannot read {shown}.",
                              f"It reads these characters only: {chars!r}.")
    if not text:
        raise TextNotReadable("Nothing to continue.", "Give at least one character.")
    return [index[c] for c in text]


def decode(tokens: list[int], vocab: int) -> str:
    chars = alphabet(vocab)
    return "".join(chars[t] for t in tokens)
