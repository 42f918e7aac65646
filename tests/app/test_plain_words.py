"""Every page, the tray's tooltip and menu, and the notifications speak plainly (tests/
plain_words.py): no raw id where a name belongs, no "0.0000", no share above 100 %, no
"1 villages" - from a rich snapshot with awkward values, and from a real node."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication, QWidget

from app.bridge import NodeBridge
from app.dashboard import PAGES, Dashboard
from app.state import Notifier, tray_state
from core import snapshot as sn
from core.telemetry import FIELDS
from tests.app.conftest import two_villages
from tests.app.fake_node import FakeHandle
from tests.app.test_no_fixed_figures import snapshot, texts
from tests.nodes import wait_for
from tests.plain_words import faults


def awkward(seed: int) -> dict[str, Any]:
    """The rich snapshot, with the values that used to read badly: credits of 4.096 and
    0.0, a relaying rate of 1e-9, a privacy-noised share above 1, one peer of three."""
    fields = snapshot(seed)
    noisy = tuple((name, 1.3 if name == "contributing" else 0.5) for name in FIELDS)
    net = replace(fields["telemetry"].network, means=noisy, villages=3.0, uncertainty=0.1)
    fields["telemetry"] = replace(fields["telemetry"], network=net, regional=net,
                                  local=noisy)
    fields["credits"] = replace(fields["credits"], balance=0.0, pending=4.096, today=4.096,
                                rates=(("relay", 1e-9), ("swarm", 0.01)))
    fields["peers"] = fields["peers"][:1]
    return fields


def visible_texts(dash: Dashboard) -> list[tuple[str, str]]:
    """(where, text) of what a gardener sees now: visible widgets only (the Overview's
    Details stay closed), page by page."""
    shown = list(texts(dash))
    hidden = {f"{name}/{type(w).__name__}#{k}:{w.objectName()}"
              for name, page in zip(PAGES, dash.pages, strict=True)
              for k, w in enumerate(page.findChildren(QWidget)) if not w.isVisibleTo(page)}
    return [(w, t) for w, t in shown if w.split("[")[0] not in hidden]


def test_the_pages_speak_plainly(fake: tuple[FakeHandle, Dashboard]) -> None:
    handle, dash = fake
    for seed in (1, 2):
        handle.publish(**awkward(seed))
        QApplication.processEvents()
        bad = [f"{where}: {f} in {text[:100]!r}" for where, text in visible_texts(dash)
               for f in faults(text)]
        assert not bad, "\n".join(bad)
    # the Details disclosure is where the id and the addresses live
    dash.show_page("overview")
    dash.overview.details_toggle.click()
    assert dash.overview.details.isVisible()
    assert dash.overview.peer_id.text() == handle.snapshot().peer_id


def test_the_tray_and_its_notifications_speak_plainly() -> None:
    import time

    now = time.time()
    for seed in (1, 2):
        snap = sn.NodeSnapshot(**awkward(seed))
        st = tray_state(snap, now)
        assert not faults(st.tooltip), st.tooltip
        notifier = Notifier(enabled=True)
        for s in (snap, replace(snap, reachability="relay-only",
                                reachability_detail="relay-only: forward TCP port 4001"),
                  replace(snap, services=(sn.ServiceStatus("dht", "restarting", "boom"),))):
            for n in notifier.observe(s, now):
                assert not faults(f"{n.title} {n.text}"), n


def test_the_tray_menu_speaks_plainly(qtbot: Any, tmp_path: Path) -> None:
    from app.tray import TrayController

    handle = FakeHandle(tmp_path)
    handle.start()
    bridge = NodeBridge(handle)  # type: ignore[arg-type]
    try:
        tray = TrayController(bridge)
        handle.publish(**awkward(1))
        QApplication.processEvents()
        actions = [a for a in tray.menu.actions()]
        for menu in [a.menu() for a in actions if a.menu() is not None]:
            actions += menu.actions()
        words = [f"{a.text()} {a.toolTip()}" for a in actions]
        assert words and not [w for w in words if faults(w)], words
    finally:
        bridge.close()


def test_a_real_village_s_pages_speak_plainly(qtbot: Any, tmp_path: Path) -> None:
    """Two real villages on loopback, the dashboard on the first: every page's text."""
    with two_villages(qtbot, tmp_path, "plain-", participate=True) as (a, _b, dash):
        wait_for(lambda: len(a.snapshot().peers) == 1 and len(a.snapshot().villages) >= 1,
                 30, "the neighbour's record")
        qtbot.waitUntil(lambda: dash.overview.peers.count() == 1, timeout=10000)
        bad = [f"{where}: {f} in {text[:100]!r}" for where, text in visible_texts(dash)
               for f in faults(text)]
        assert not bad, "\n".join(bad)
