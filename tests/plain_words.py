"""What a gardener must never read (issue: a dashboard a gardener understands): a raw peer id
where a name belongs, a number with four decimals, a share above 100 %, "1 villages",
scientific notation. Shared by the Qt pages' tests, the tray's and the web dashboard's."""

from __future__ import annotations

import re

RAW_ID = re.compile(r"12D3KooW[1-9A-HJ-NP-Za-km-z]{6,}")
MANY_DECIMALS = re.compile(r"(?<![\w.])\d+\.\d{4,}(?!\w)")
PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?%")
ONE_PLURAL = re.compile(r"(?<![\d.,])\b1 (villages|peers|credits|receipts|threads|entries|"
                        r"messages|days|hours|samples|others|more villages)\b")
SCIENTIFIC = re.compile(r"(?<![\w.])\d+(?:\.\d+)?e[-+]?\d+\b", re.IGNORECASE)
ADDRESS = re.compile(r"/ip[46]/\S+")
PERSONA_AT = re.compile(r"\b[0-9a-f]{8,}@\w{4,}")  # a persona id at a shortened village id


def faults(text: str, *, ids: bool = False) -> list[str]:
    """What is wrong with `text` for a gardener ([] when nothing); `ids`: ids and addresses
    belong here (a Details section, a tooltip)."""
    out = []
    if not ids:
        out += [f"raw id {m!r}" for m in RAW_ID.findall(text)]
        out += [f"address {m!r}" for m in ADDRESS.findall(text)]
        out += [f"persona id {m!r}" for m in PERSONA_AT.findall(text)]
    scrubbed = ADDRESS.sub(" ", RAW_ID.sub(" ", text))
    out += [f"four decimals {m!r}" for m in MANY_DECIMALS.findall(scrubbed)]
    out += [f"{m} % is above 100" for m in PERCENT.findall(scrubbed) if float(m) > 100]
    out += [f"'1 {m}'" for m in ONE_PLURAL.findall(scrubbed)]
    out += [f"scientific {m!r}" for m in SCIENTIFIC.findall(scrubbed)]
    return out
