"""The app in German through Qt's translation machinery: every string the pages, the tray and
the sentences core builds for them pass to `tr` is in the shipped catalogue, translated, with
its {fields} kept; the compiled catalogue is the one the .ts gives; and with it installed the
dashboard, the tray's menu and tooltip show no catalogue string left in English."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from app import i18n
from app.bridge import NodeBridge
from app.dashboard import PAGES, Dashboard
from app.tray import TrayController
from core.i18n import tr
from tests.app.fake_node import FakeHandle
from tests.app.test_no_fixed_figures import snapshot, texts

ROOT = Path(__file__).resolve().parents[2]
TS = ROOT / "resources" / "i18n" / "grove_de.ts"
QM = ROOT / "resources" / "i18n" / "grove_de.qm"
BIN = Path(sys.executable).parent


def sources() -> list[Path]:
    return sorted(p for d in ("app", "core") for p in (ROOT / d).rglob("*.py"))


def catalogue(path: Path) -> dict[str, tuple[str, str]]:
    """source -> (translation, its type: "" when finished)."""
    out = {}
    for m in ET.parse(path).getroot().iter("message"):
        t = m.find("translation")
        assert t is not None
        out[m.findtext("source") or ""] = (t.text or "", t.get("type", ""))
    return out


def fields(text: str) -> list[str]:
    return sorted(re.findall(r"\{[^}]*\}", text))


def test_every_string_for_people_is_in_the_german_catalogue_translated(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.ts"
    subprocess.run([str(BIN / "pyside6-lupdate"), *map(str, sources()), "-locations", "none",
                    "-ts", str(fresh)], check=True, capture_output=True)
    wanted, shipped = catalogue(fresh), catalogue(TS)
    assert len(wanted) > 400  # the pages, the tray, the wizard, core.glance, core.humanize
    missing = sorted(set(wanted) - set(shipped))
    assert not missing, f"not in {TS.name} (run `make i18n`, then translate): {missing}"
    stale = sorted(set(shipped) - set(wanted))
    assert not stale, f"in {TS.name} but no longer in the code (`make i18n`): {stale}"
    unfinished = [s for s, (t, kind) in shipped.items() if kind or not t]
    assert not unfinished, f"not translated: {unfinished}"
    changed = [s for s, (t, _) in shipped.items() if fields(s) != fields(t)]
    assert not changed, f"a translation lost or added a {{field}}: {changed}"
    compiled = tmp_path / "grove_de.qm"
    subprocess.run([str(BIN / "pyside6-lrelease"), str(TS), "-qm", str(compiled)], check=True,
                   capture_output=True)
    assert compiled.read_bytes() == QM.read_bytes(), f"{QM.name} is stale: run `make i18n`"


def test_no_tr_call_builds_its_text_at_run_time() -> None:
    """`tr(f"...")` or `tr("a" + b)` can never be found in a catalogue: fields go in
    `{0}` and `.format` after the translation."""
    bad = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "tr" and \
                    node.args and isinstance(node.args[0], ast.JoinedStr | ast.BinOp):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad


@pytest.fixture
def german(qapp: QApplication) -> Iterator[str]:
    try:
        yield i18n.install(qapp, "de")
    finally:
        i18n.install(qapp, "en")


def test_the_dashboard_and_the_tray_speak_german(german: str, qtbot: Any,
                                                  tmp_path: Path) -> None:
    assert german == "de" and tr("Overview") == "Übersicht"
    words = {s: t for s, (t, _) in catalogue(TS).items() if s != t}
    handle = FakeHandle(tmp_path)
    handle.start()
    bridge = NodeBridge(handle)  # type: ignore[arg-type]
    try:
        dash = Dashboard(bridge)
        qtbot.addWidget(dash)
        dash.show()
        tray = TrayController(bridge, QSystemTrayIcon())
        for seed in (1, 2):
            handle.publish(**snapshot(seed))
            QApplication.processEvents()
            # a training project's status is the node's own sentence (not translated yet)
            english = [f"{where}: {text!r}" for where, text in texts(dash)
                       if text.strip() in words and not re.match(r"Training/.*,1\]$", where)]
            assert not english, "\n".join(english)
            shown = [dash.sidebar.item(i).text() for i in range(dash.sidebar.count())]
            assert shown == [words.get(p, p) for p in PAGES]
            assert "Übersicht" in shown and "Protokoll" in shown
            assert dash.overview.participate.text() == "Diesen Computer dem Netzwerk leihen"
            menu = [a.text() for a in tray.menu.actions() if a.text()]
            assert not [m for m in menu if m in words], menu
            assert "Grove beenden" in menu and "Dashboard öffnen" in menu
            tip = tray.icon.toolTip()
            assert "Credits" in tip and "credits:" not in tip, tip
        dash.show_page("log")  # pages are still found by their English names
        assert dash.current_page() == "Log"
    finally:
        bridge.close()
    i18n.install(QApplication.instance(), "en")  # type: ignore[arg-type]
    assert tr("Overview") == "Overview"


def test_english_where_no_catalogue_ships(qapp: QApplication,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROVE_LANG", "xx")
    assert i18n.install(qapp) == "en" and tr("Overview") == "Overview"
    monkeypatch.setenv("GROVE_LANG", "de_AT.UTF-8")
    assert i18n.wanted_language() == "de"
