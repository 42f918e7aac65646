"""Words for people in the gardener's language, without Qt in core.

`tr(text)` gives `text` in the installed language, or unchanged where none is installed (the
CLI, the headless node and its web dashboard speak English). The tray app installs Qt's
translator here (app/i18n.py), so the pages and the sentences core builds for them
(core.glance, core.humanize) share one catalogue: resources/i18n/grove_<lang>.ts, which
`make i18n` refreshes from every `tr("...")` in app/ and core/ (Qt's lupdate).

Sources are English. What varies goes in `{fields}`, filled after translation:
`tr("Paused until {time}.").format(time=...)`; an f-string inside `tr` could never be found in
a catalogue (tests/app/test_i18n.py refuses one).
"""

from __future__ import annotations

from collections.abc import Callable


def _as_is(text: str) -> str:
    return text


_translate: Callable[[str], str] = _as_is


def install(translate: Callable[[str], str] | None) -> None:
    """Use `translate` for every `tr` from now on (None: English again)."""
    global _translate
    _translate = translate or _as_is


def tr(text: str) -> str:
    return _translate(text)


def QT_TR_NOOP(text: str) -> str:
    """Marks a constant for the catalogue where it is defined (at import, before any
    translator is installed); it is translated where it is shown, with `tr(NAME)`."""
    return text
