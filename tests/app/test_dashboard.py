"""Every dashboard page, driven through its real widgets (offscreen Qt): against the real node
(real libp2p hosts on loopback, real settings and SQLite files) where the node can produce the
state, against the contract-checked fake where it cannot (relay-only, telemetry rounds)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialogButtonBox,
    QLineEdit,
    QMessageBox,
    QWidget,
)

from app.bridge import NodeBridge
from app.dashboard import PAGES, Dashboard
from app.pages import resources as resources_page
from core.names import village_name
from core.snapshot import (
    CreditsView,
    HealthAggregate,
    NodeState,
    PeerView,
    TelemetryView,
    UsageView,
    VillageView,
)
from tests.app.conftest import two_villages
from tests.app.fake_node import FakeHandle
from tests.nodes import make_handle


@pytest.fixture
def real(qtbot: Any, tmp_path: Path) -> Iterator[tuple[Any, Dashboard]]:
    handle = make_handle(tmp_path, "dash")
    handle.start()
    bridge = NodeBridge(handle)
    dash = Dashboard(bridge)
    qtbot.addWidget(dash)
    dash.show()
    yield handle, dash
    bridge.close()
    handle.stop()


def test_overview_live_from_two_real_villages_then_offline_and_restart(
        qtbot: Any, tmp_path: Path) -> None:
    a = make_handle(tmp_path, "a")
    a.start()
    b = make_handle(tmp_path, "b", bootstrap=(a.snapshot().listen_addrs[0],))
    b.start()
    bridge = NodeBridge(a)
    d = Dashboard(bridge)
    qtbot.addWidget(d)
    d.show()
    o = d.overview
    try:
        qtbot.waitUntil(lambda: o.peers.count() == 1, timeout=10000)
        assert o.peer_id.text() == a.snapshot().peer_id
        b_id = b.snapshot().peer_id
        assert o.peers.item(0).text().startswith(village_name(b_id))  # named, not an id
        assert b_id in o.peers.item(0).toolTip()                     # the id on hover
        assert o.peers_title.text() == "Connected villages (1)"
        assert o.status.text() == "Grove is not using this computer"
        assert o.why.text().startswith("You switched lending off")
        assert o.tier.text().startswith("cpu (") and "threads" in o.hardware.text()
        qtbot.waitUntil(lambda: "of this computer (your limit 50 %)" in o.compute.text(),
                        timeout=10000)  # measured once the node sampled its usage
        qtbot.waitUntil(lambda: "credits earned" in o.today.text(), timeout=10000)  # ledger
        assert "of processor time" in o.today.text()  # the activity store's measurement
        assert o.problems.text() == "Nothing needs your attention."
        assert o.network.text().startswith("Connected to 1 village;")
        assert not o.details.isVisible()  # the ids and addresses wait behind "Details"
        qtbot.mouseClick(o.details_toggle, Qt.MouseButton.LeftButton)
        assert o.details.isVisible() and o.name.text() == village_name(o.peer_id.text())
        qtbot.mouseClick(o.copy_id, Qt.MouseButton.LeftButton)
        assert QApplication.clipboard().text() == a.snapshot().peer_id
        qtbot.waitUntil(lambda: o.known.text().startswith("1 village "), timeout=20000)
        # the Participate box drives the node
        assert not o.participate.isChecked() and not o.restart.isVisible()
        qtbot.mouseClick(o.participate, Qt.MouseButton.LeftButton,
                         pos=QPoint(8, o.participate.height() // 2))  # on the box itself
        qtbot.waitUntil(lambda: a.snapshot().participating, timeout=2000)
        d.close()  # close hides to the tray
        assert not d.isVisible()
        d.show()
        b.stop()
        qtbot.waitUntil(lambda: o.peers.count() == 0, timeout=10000)
        a.stop()  # the node stops under the UI: it says so and offers a restart
        # (a busy machine: stopping and starting a real node take seconds)
        qtbot.waitUntil(lambda: o.status.text() == "Grove is not running", timeout=30000)
        assert o.restart.isVisible() and not o.participate.isEnabled()
        qtbot.mouseClick(o.restart, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: a.snapshot().state is NodeState.RUNNING, timeout=30000)
        qtbot.waitUntil(lambda: not o.restart.isVisible(), timeout=5000)
        assert o.participate.isChecked()  # remembered across the restart
    finally:
        bridge.close()
        a.stop()
        b.stop()


def test_resources_controls_change_the_real_node_and_refuse_bad_input(
        qtbot: Any, real: tuple[Any, Dashboard], monkeypatch: pytest.MonkeyPatch) -> None:
    handle, d = real
    d.show_page("resources")
    r = d.resources
    qtbot.waitUntil(lambda: r.controls["cpu_share"].value() == 50, timeout=3000)
    # a slider drag: many values, one change sent, the last one
    slider = r.controls["cpu_share"]
    for v in (55, 60, 65, 70):
        slider.setValue(v)
    qtbot.waitUntil(lambda: handle.snapshot().settings.cpu_share == 70, timeout=3000)
    assert "cpu_share = 70" in handle.config.paths.settings_file.read_text()
    # bounded widgets: a value past the range cannot be entered
    spin = r.controls["gpu_temp_limit_c"]
    spin.setValue(500)
    assert spin.value() == 100
    qtbot.waitUntil(lambda: handle.snapshot().settings.gpu_temp_limit_c == 100, timeout=3000)
    r.controls["idle_only"].click()
    qtbot.waitUntil(lambda: handle.snapshot().settings.idle_only, timeout=3000)
    # free text the node refuses: the error says why, the field shows what is in effect
    sched = r.controls["schedule"]
    sched.setText("sometimes")
    sched.editingFinished.emit()
    qtbot.waitUntil(r.error.isVisible, timeout=3000)
    assert "schedule" in r.error.text().lower()
    assert handle.snapshot().settings.schedule == ""
    qtbot.waitUntil(lambda: sched.text() == "", timeout=3000)
    sched.setText("mon-fri 18:00-08:00")
    sched.editingFinished.emit()
    qtbot.waitUntil(lambda: handle.snapshot().settings.schedule == "mon-fri 18:00-08:00",
                    timeout=3000)
    qtbot.waitUntil(lambda: not r.error.isVisible(), timeout=3000)
    # live usage against the limits
    qtbot.waitUntil(lambda: "limit 70%" in r.usage_text["cpu"].text(), timeout=6000)
    assert "MB (limit 4096 MB; " in r.usage_text["ram"].text()
    assert "(no cap)" in r.usage_text["up"].text()
    # test my limits: participation on and the schedule out of the way, a short real job
    handle.update_settings(participate=True, schedule="", idle_only=False).result(5)
    monkeypatch.setattr(resources_page, "TEST_SECONDS", 1.0)
    qtbot.mouseClick(r.test, Qt.MouseButton.LeftButton)
    assert not r.test.isEnabled()
    qtbot.waitUntil(lambda: r.test.isEnabled() and r.test_result.text() not in
                    ("", "running for 1 s…"), timeout=60000)
    assert r.test_result.text() == handle.snapshot().compute.last_test
    # the rules gardeners ask for: a program list (typed, comma-separated) and metered
    progs = r.controls["pause_for_programs"]
    progs.setText("steam, zoom")
    progs.editingFinished.emit()
    qtbot.waitUntil(lambda: handle.snapshot().settings.pause_for_programs == ("steam", "zoom"),
                    timeout=3000)
    from core import platform_state  # the platform's seam: a desktop without NetworkManager

    monkeypatch.setattr(platform_state, "metered",
                        lambda: (None, "NetworkManager is not running"))
    r.controls["pause_on_metered"].click()
    qtbot.waitUntil(lambda: handle.snapshot().settings.pause_on_metered, timeout=3000)
    # compute goes on and the page says why the rule cannot work here
    qtbot.waitUntil(lambda: "cannot tell" in r.compute.text(), timeout=10000)
    assert "metered" in r.compute.text() and "NetworkManager" in r.compute.text()


def _dialog_ok(page: Any) -> None:
    page.dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()


@contextmanager
def _personas_page(qtbot: Any, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """A real node of profile "pers" and its dashboard's Personas page."""
    handle = make_handle(tmp_path, "pers")
    handle.start()
    bridge = NodeBridge(handle)
    d = Dashboard(bridge)
    qtbot.addWidget(d)
    d.show()
    d.show_page("personas")
    try:
        yield handle, d.personas
    finally:
        bridge.close()
        handle.stop()


def test_personas_add_edit_toggle_remove_on_the_real_node_and_kept(
        qtbot: Any, tmp_path: Path) -> None:
    with _personas_page(qtbot, tmp_path) as (handle, p):
        assert p.add.isEnabled() and not p.edit.isEnabled() and not p.remove.isEnabled()
        qtbot.mouseClick(p.add, Qt.MouseButton.LeftButton)
        assert p.dialog is not None and p.dialog.isVisible()
        _dialog_ok(p)  # no name: refused in the dialog
        assert p.dialog.isVisible() and "name" in p.dialog.problem.text()
        qtbot.keyClicks(p.dialog.name, "Ada")
        p.dialog.status.setCurrentText("running")
        p.dialog.capacity.setValue(3)
        _dialog_ok(p)
        qtbot.waitUntil(lambda: p.table.rowCount() == 1, timeout=3000)
        assert [p.table.item(0, c).text() for c in range(4)] == [
            "Ada", "running", "invitation", "3"]  # strangers cannot invite a new persona
        # the node has it (the village's signed record is built from this list)
        assert [x.name for x in handle.snapshot().personas] == ["Ada"]
        p.table.selectRow(0)
        assert p.edit.isEnabled() and p.toggle.text() == "Open to others"
        qtbot.mouseClick(p.toggle, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: p.table.item(0, 2).text() == "open", timeout=3000)
        assert p.toggle.text() == "Close to others"
        qtbot.mouseClick(p.toggle, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: p.table.item(0, 2).text() == "closed", timeout=3000)
        assert p.toggle.text() == "Open to others"
        qtbot.mouseClick(p.edit, Qt.MouseButton.LeftButton)
        assert p.dialog.name.text() == "Ada"
        p.dialog.name.setText("Ada Lovelace")
        _dialog_ok(p)
        qtbot.waitUntil(lambda: p.table.item(0, 0).text() == "Ada Lovelace", timeout=3000)
        assert handle.snapshot().personas[0].seq == 4
        qtbot.mouseClick(p.add, Qt.MouseButton.LeftButton)
        qtbot.keyClicks(p.dialog.name, "Basho")
        _dialog_ok(p)
        qtbot.waitUntil(lambda: p.table.rowCount() == 2, timeout=3000)
    # kept across a restart (SQLite), then removed with a confirmation
    with _personas_page(qtbot, tmp_path) as (handle, p):
        qtbot.waitUntil(lambda: p.table.rowCount() == 2, timeout=3000)
        assert p.table.item(0, 0).text() == "Ada Lovelace"
        p.table.selectRow(1)
        qtbot.mouseClick(p.remove, Qt.MouseButton.LeftButton)
        assert p.confirm is not None and "Basho" in p.confirm.text()
        p.confirm.button(QMessageBox.StandardButton.No).click()
        qtbot.wait(200)
        assert len(handle.snapshot().personas) == 2
        qtbot.mouseClick(p.remove, Qt.MouseButton.LeftButton)
        p.confirm.button(QMessageBox.StandardButton.Yes).click()
        qtbot.waitUntil(lambda: p.table.rowCount() == 1, timeout=3000)
        assert p.message.text() == "Removed Basho."


def test_village_health_draws_tiers_aggregates_history_and_nearby_villages(
        qtbot: Any, fake: tuple[FakeHandle, Dashboard]) -> None:
    handle, d = fake
    d.show_page("health")
    h = d.health
    now = time.time()
    villages = tuple(VillageView(f"12D3KooWv{i}", tier, (), "eu", ("Ada",) if i == 0 else (),
                                 True, "relay" if i == 2 else "direct", now, now + 300)
                     for i, tier in enumerate(("cpu", "consumer-gpu", "consumer-gpu")))
    for k in range(3):
        net = HealthAggregate(means=(("contributing", 0.25 + 0.25 * k),), villages=40 + k,
                              uncertainty=0.1, at=now - 60 + 20 * k, rounds=k + 1)
        handle.publish(villages=villages, peers=(PeerView("12D3KooWv1", "/ip4/x", 2.5),),
                       dht_peers=3, telemetry=TelemetryView(
                           local=(("contributing", 1.0),), regional=net, network=net),
                       credits=CreditsView(running=True, checks=(("12D3KooWv1", 4, 1),)))
    assert h.tiers.bars == [("CPU", 2), ("GPU", 2), ("GPU 16G+", 0)]
    assert len(h.history.points) == 3 and h.chart.series[0][-1][1] == 42
    assert h.contributing.series[0][-1][1] == 75
    assert "The network holds about 42 villages (±4)" in h.summary.text()
    assert h.aggregates.item(0, 0).text() == "100 %" and h.aggregates.item(0, 2).text() == "75 %"
    assert h.villages.rowCount() == 3
    assert h.villages.item(0, 8).text() == "2.5 ms"  # connected first
    assert h.villages.item(0, 7).text() == "4 passed, 1 failed"  # its work, checked here
    assert {h.villages.item(r, 7).text() for r in (1, 2)} == {"not checked"}
    assert h.villages.item(0, 4).text() == "not measured"  # no upload measured yet
    assert h.villages.item(0, 5).text() == "not measured"
    assert {h.villages.item(r, 3).text() for r in range(3)} == {"direct", "relay"}
    assert {h.villages.item(r, 0).text() for r in range(3)} == {
        village_name(v.peer_id) for v in villages}  # names, the ids on hover
    assert {h.villages.item(r, 0).toolTip().split("Village id: ")[1] for r in range(3)} == {
        v.peer_id for v in villages}
    pixels = h.chart.grab().toImage()
    assert pixels.width() > 100  # it draws (and the screenshot test looks at it)


def test_training_lists_projects_and_opts_in_and_out_of_a_real_node(
        qtbot: Any, real: tuple[Any, Dashboard]) -> None:
    handle, d = real
    d.show_page("training")
    assert d.current_page() == "Training"
    table = d.training.projects
    qtbot.waitUntil(lambda: table.rowCount() == 1, timeout=5000)
    first = table.item(0, 0)
    assert "digits" in first.text().lower() and first.checkState() == Qt.CheckState.Unchecked
    assert table.item(0, 1).text() == "not opted in"
    first.setCheckState(Qt.CheckState.Checked)  # the gardener ticks it
    qtbot.waitUntil(lambda: handle.snapshot().settings.training_projects == ("digits",),
                    timeout=5000)
    # participation is off: the row says why nothing trains
    qtbot.waitUntil(lambda: table.item(0, 1).text() == "paused: participation is off",
                    timeout=5000)
    table.item(0, 0).setCheckState(Qt.CheckState.Unchecked)
    qtbot.waitUntil(lambda: handle.snapshot().settings.training_projects == (), timeout=5000)


def test_training_page_turns_block_serving_on_and_says_why_it_waits(
        qtbot: Any, real: tuple[Any, Dashboard]) -> None:
    handle, d = real
    d.show_page("training")
    page = d.training
    assert not page.swarm_serve.isChecked()
    qtbot.waitUntil(lambda: "grove swarm serve" in page.swarm_status.text(), timeout=5000)
    page.swarm_serve.click()  # the gardener ticks it
    qtbot.waitUntil(lambda: handle.snapshot().settings.swarm_serve, timeout=5000)
    # participation is off: it says so instead of serving
    qtbot.waitUntil(lambda: "participation is off" in page.swarm_status.text(), timeout=5000)
    assert not page.swarm_numbers.isVisible()
    page.swarm_serve.click()
    qtbot.waitUntil(lambda: not handle.snapshot().settings.swarm_serve, timeout=5000)
    # training through the swarm, the same way: on from the page, and why it waits
    assert not page.swarm_train.isChecked()
    page.swarm_train.click()
    qtbot.waitUntil(lambda: handle.snapshot().settings.swarm_train, timeout=5000)
    qtbot.waitUntil(lambda: "SWARM training: paused: participation is off"
                    in page.swarm_train_status.text(), timeout=5000)
    page.swarm_train.click()
    qtbot.waitUntil(lambda: not handle.snapshot().settings.swarm_train, timeout=5000)


def test_credits_page_shows_the_real_ledger_and_exports_it(
        qtbot: Any, real: tuple[Any, Dashboard], tmp_path: Path) -> None:
    from core.ledger.service import LEDGER_FILE
    from core.ledger.store import Ledger
    from tests.test_ledger import THEM_KEY, receipt

    handle, d = real
    d.show_page("credits")
    page = d.credits
    qtbot.waitUntil(lambda: handle.snapshot().credits.running, timeout=10000)
    qtbot.waitUntil(lambda: page.balance.text().startswith("0 credits"), timeout=5000)
    assert not page.export.isEnabled() and "Nothing to export" in page.export.toolTip()
    # receipts land in the village's own ledger, as they would from a consumer
    me_key = handle.config.key
    me = handle.snapshot().peer_id
    from core.dht.keyspace import peer_id_from_public_key

    them = peer_id_from_public_key(THEM_KEY.public_bytes)
    ledger = Ledger(handle.config.paths.data_dir / LEDGER_FILE, me)  # a second writer: fine
    ids = [ledger.add(receipt(s, worker=(me_key, me), consumer=(THEM_KEY, them)))
           for s in (1, 2)]
    ledger.decide(ids[0], True).result(5)
    ledger.decide(ids[1], False, "recomputed output differs").result(5)
    ledger.close()
    qtbot.waitUntil(lambda: page.balance.text().startswith("0.16 credits"), timeout=10000)
    assert page.split.text() == ("0 credits waiting for checks · 0.16 credits verified · "
                                 "0.16 credits rejected")
    # honoured: none yet (the consumer is neither pre-trusted nor checked); once its own work
    # for this village passed a sampled check, what it paid is honoured
    assert page.honoured.text().startswith("0 credits earned from villages you trust")
    ledger = Ledger(handle.config.paths.data_dir / LEDGER_FILE, me)
    ledger.decide(-1, True, "", peer=them).result(5)
    ledger.close()
    qtbot.waitUntil(lambda: page.honoured.text().startswith("0.16 credits earned"),
                    timeout=10000)
    assert "(1 village trusted" in page.honoured.text()
    assert "serving a model: 10 credits per thousand samples served" in page.rates.text()
    assert "relaying: 1 credit per billion bytes relayed" in page.rates.text()
    assert page.events.rowCount() == 2
    reasons = {page.events.item(r, 5).text() for r in range(2)}
    assert "recomputed output differs" in reasons
    assert {page.events.item(r, 2).text() for r in range(2)} == {village_name(them)}
    assert page.kinds.bars == [("serving a model", pytest.approx(0.16))]
    assert page.export.isEnabled()
    out = tmp_path / "credits.csv"
    assert page.export_to(out) == 2 and "Exported 2" in page.exported.text()
    assert out.read_text().count("\n") == 3


def test_log_lists_real_events_and_copies_them(
        qtbot: Any, real: tuple[Any, Dashboard]) -> None:
    handle, d = real
    d.show_page("log")
    handle.set_participation(True).result(5)
    qtbot.waitUntil(lambda: any("participation switched on" in x for x in d.log.lines),
                    timeout=3000)
    qtbot.mouseClick(d.log.copy, Qt.MouseButton.LeftButton)
    assert "participation switched on" in QApplication.clipboard().text()
    assert d.log.copied.text().startswith("copied ")


def test_keyboard_and_tooltips_on_every_control(
        qtbot: Any, fake: tuple[FakeHandle, Dashboard]) -> None:
    _, d = fake
    for i, title in enumerate(PAGES):
        qtbot.keyClick(d, Qt.Key.Key_1 + i, Qt.KeyboardModifier.ControlModifier)
        assert d.current_page() == title
    kinds = (QAbstractButton, QAbstractSlider, QAbstractSpinBox, QLineEdit, QComboBox)
    missing = [w for w in d.findChildren(QWidget) if isinstance(w, kinds)
               and w.parent() is not None and not w.toolTip()
               and w.focusPolicy() != Qt.FocusPolicy.NoFocus
               and not w.objectName().startswith("qt_")  # Qt's own parts of a widget
               and type(w).__name__ not in ("QScrollBar", "QToolButton")]
    assert not missing, [type(w).__name__ + ":" + w.accessibleName() for w in missing]
    labelled = [w for w in d.findChildren(QWidget) if isinstance(w, kinds) and w.toolTip()]
    assert len(labelled) >= 25 and all(w.accessibleName() for w in labelled)


def test_relay_only_and_usage_shown_from_the_fake(
        qtbot: Any, fake: tuple[FakeHandle, Dashboard]) -> None:
    handle, d = fake
    snap = handle.publish(reachability="relay-only", reachability_detail=(
        "relay-only: slower; forward TCP port 4001 on your router to fix"),
                          usage=UsageView(cpu_percent=12.5, rss_mb=180, upload_kbps=40,
                                          at=time.time()))
    assert "forward TCP port 4001" in d.overview.reachability.text()
    d.show_page("resources")
    assert "12.5% of this computer (limit 50%)" in d.resources.usage_text["cpu"].text()
    assert d.resources.bars["cpu"].value() == 25
    handle.publish(settings=replace(snap.settings, upload_kbps=80))
    assert d.resources.bars["up"].value() == 50


def test_personas_page_shows_a_real_conversation_and_its_transcript(
        qtbot: Any, tmp_path: Path) -> None:
    with two_villages(qtbot, tmp_path, "p") as (a, b, d):
        d.show_page("personas")
        page = d.personas
        pa = a.add_persona("Ada", status="running").result(10)
        pb = b.add_persona("Bo", status="running", availability="open").result(10)
        qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=5000)
        assert page.table.item(0, 0).text() == "Ada" and page.table.item(0, 1).text() == \
            "running"
        bo = f"Bo at {village_name(b.snapshot().peer_id)}"
        # started from the page: once Bo's open persona is known from b's signed record
        qtbot.waitUntil(page.talk.isEnabled, timeout=30000)
        qtbot.mouseClick(page.talk, Qt.MouseButton.LeftButton)
        dialog = page.talk_dialog
        assert dialog is not None and dialog.partner.currentText() == bo
        assert dialog.ours.currentText() == "Ada"
        dialog.turns.setValue(2)
        qtbot.mouseClick(dialog.findChild(QDialogButtonBox).button(
            QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: page.message.text() == f"Talking with {bo}.", timeout=30000)
        qtbot.waitUntil(lambda: page.conversations.rowCount() == 1, timeout=10000)
        qtbot.waitUntil(lambda: page.conversations.item(0, 2).text() == "4", timeout=30000)
        assert page.conversations.item(0, 0).text() == "Ada at this village"
        assert page.conversations.item(0, 1).text() == bo  # named, not "<id>@<id>"
        qtbot.waitUntil(lambda: page.conversations.item(0, 3).text() == "4 of 4 entries",
                        timeout=30000)  # the final checkpoint both villages co-signed
        page.conversations.selectRow(0)
        assert page.conversations.item(0, 4).text() == "finished"
        assert not page.stop_talk.isEnabled()  # nothing left to stop
        lines = page.transcript.toPlainText().splitlines()
        assert len(lines) == 4 and {line.split(":")[0] for line in lines} == {
            "Ada at this village", bo}
        assert pa.id and pb.id and a.snapshot().conversations[0].partners == (bo,)


def test_a_gardener_names_the_village_and_the_name_travels_in_its_record(
        qtbot: Any, tmp_path: Path) -> None:
    """The Overview's Details: a name typed there is sanitised, saved to the settings, put in
    the signed record, and shown by the neighbour beside the two-word name."""
    with two_villages(qtbot, tmp_path, "name-") as (a, b, d):
        o = d.overview
        o.details_toggle.click()
        o.rename.setText("  Anna's\tdesk\u202e ")
        qtbot.mouseClick(o.save_name, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: a.snapshot().settings.village_name == "Anna's desk",
                        timeout=10000)
        qtbot.waitUntil(lambda: o.name.text() == "Anna's desk", timeout=5000)
        me = a.snapshot().peer_id
        want = f"Anna's desk ({village_name(me)})"
        qtbot.waitUntil(lambda: any(v.peer_id == me and v.name == want
                                    for v in b.snapshot().villages), timeout=30000)
