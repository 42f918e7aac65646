"""Personas: the village's personas, their status and availability; add, edit, remove; their
conversations with personas of other villages (partners, messages, the last checkpoint every
village co-signed) and the selected conversation's transcript.

Dialogs are opened with `open()` (never `exec()`: a nested event loop inside qasync
deadlocks); their answers come back as signals."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.bridge import NodeBridge
from app.pages import heading, note, tip
from core.i18n import QT_TR_NOOP, tr
from core.personas.model import (
    AVAILABILITY,
    BACKENDS,
    MAX_CAPACITY,
    MAX_DESCRIPTION,
    MAX_NAME,
    STATUSES,
    Persona,
)
from core.snapshot import NodeSnapshot, NodeState, live_villages

CONV_COLUMNS = (QT_TR_NOOP("Our persona"), QT_TR_NOOP("Talking with"),
    QT_TR_NOOP("Messages"), QT_TR_NOOP("Agreed by everyone"), QT_TR_NOOP("State"))
TURNS = 5  # messages each persona says in a conversation started here

COLUMNS = (QT_TR_NOOP("Name"), QT_TR_NOOP("Status"), QT_TR_NOOP("Availability"),
    QT_TR_NOOP("Capacity"), QT_TR_NOOP("Backend"))


class PersonaDialog(QDialog):
    def __init__(self, parent: QWidget, persona: Persona | None = None) -> None:
        super().__init__(parent)
        self.persona = persona
        self.setWindowTitle(tr("Edit persona") if persona else tr("Add a persona"))
        self.name = tip(QLineEdit(persona.name if persona else ""),
                        tr("What other villages see (1 to {0} characters)").format(
                                MAX_NAME), tr("Name"))
        self.name.setMaxLength(MAX_NAME)
        self.description = tip(QPlainTextEdit(persona.description if persona else ""),
                               tr("A short public description (at most {0} characters)").format(
                                       MAX_DESCRIPTION), tr("Description"))
        self.description.setTabChangesFocus(True)
        self.description.setMaximumHeight(80)
        self.backend = self._combo(BACKENDS, persona.backend if persona else "scripted",
                                   tr("What answers for this persona"))
        self.status = self._combo(STATUSES, persona.status if persona else "sleeping",
                                  tr("Whether the persona runs now"))
        self.availability = self._combo(AVAILABILITY,
                                        persona.availability if persona else "invitation",
                                        tr("Who may start a conversation with it"))
        self.capacity = tip(QSpinBox(), tr("Conversations it may hold at once"), tr("Capacity"))
        self.capacity.setRange(1, MAX_CAPACITY)
        self.capacity.setValue(persona.capacity if persona else 1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        self.problem = note()
        self.problem.setStyleSheet("color: #c5221f;")
        form = QFormLayout(self)
        form.addRow(tr("Name:"), self.name)
        form.addRow(tr("Description:"), self.description)
        form.addRow(tr("Backend:"), self.backend)
        form.addRow(tr("Status:"), self.status)
        form.addRow(tr("Availability:"), self.availability)
        form.addRow(tr("Capacity:"), self.capacity)
        form.addRow(self.problem)
        form.addRow(self.buttons)

    @staticmethod
    def _combo(items: tuple[str, ...], current: str, text: str) -> QComboBox:
        box = tip(QComboBox(), text)
        box.addItems(list(items))
        box.setCurrentText(current)
        return box

    def values(self) -> dict[str, Any]:
        return {"name": self.name.text().strip(),
                "description": self.description.toPlainText().strip(),
                "backend": self.backend.currentText(), "status": self.status.currentText(),
                "availability": self.availability.currentText(),
                "capacity": self.capacity.value()}

    def _accept(self) -> None:
        v = self.values()
        if not v["name"]:
            self.problem.setText(tr("Give the persona a name."))
            return
        if len(v["description"]) > MAX_DESCRIPTION:
            self.problem.setText(tr("The description is {0} characters; at most {1}.").format(
                    len(v['description']), MAX_DESCRIPTION))
            return
        self.accept()


class TalkDialog(QDialog):
    """Start a conversation: one of this village's personas and a neighbour's open one."""

    def __init__(self, parent: QWidget, mine: tuple[Persona, ...],
                 theirs: list[tuple[str, str, str]]) -> None:
        """`theirs`: (village id, persona id, "Ada at Mossy Heron")."""
        super().__init__(parent)
        self.setWindowTitle(tr("Start a conversation"))
        self.mine, self.theirs = mine, theirs
        self.ours = QComboBox()
        self.ours.addItems([p.name for p in mine])
        self.ours.setAccessibleName(tr("Our persona"))
        self.partner = QComboBox()
        self.partner.addItems([label for _, _, label in theirs])
        self.partner.setAccessibleName(tr("Persona to talk with"))
        self.turns = QSpinBox()
        self.turns.setRange(1, 50)
        self.turns.setValue(TURNS)
        self.turns.setAccessibleName(tr("Messages each"))
        form = QFormLayout(self)
        form.addRow(tr("Our persona:"), self.ours)
        form.addRow(tr("Talk with:"), self.partner)
        form.addRow(tr("Messages each:"), self.turns)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText(tr("Start"))
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def choice(self) -> tuple[str, tuple[str, str], int]:
        """(our persona id, (their village, their persona id), messages each)."""
        village, persona, _ = self.theirs[self.partner.currentIndex()]
        return self.mine[self.ours.currentIndex()].id, (village, persona), self.turns.value()


def open_partners(snap: NodeSnapshot, now: float) -> list[tuple[str, str, str]]:
    """Neighbours' personas open to a conversation now: (village, persona id, label)."""
    return sorted(((v.peer_id, pid, f"{name} at {v.name}")
                   for v in live_villages(snap.villages, now) if v.peer_id != snap.peer_id
                   for pid, name in v.open_personas), key=lambda x: x[2])


class PersonasPage(QWidget):
    _done = Signal(str)  # error ("" when the node took the change)

    def __init__(self, bridge: NodeBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.personas: tuple[Persona, ...] = ()
        self.dialog: PersonaDialog | None = None
        self.confirm: QMessageBox | None = None
        self.table = tip(QTableWidget(0, len(COLUMNS)), tr("This village's personas; double-click "
                         "to edit"), tr("Personas"))
        self.table.setHorizontalHeaderLabels([tr(c) for c in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(lambda *_: self.edit_selected())
        self.table.itemSelectionChanged.connect(self._selection)
        self.add = tip(QPushButton(tr("Add…")), tr("Add a persona to this village"))
        self.add.clicked.connect(lambda: self._open(None))
        self.edit = tip(QPushButton(tr("Edit…")), tr("Change the selected persona"))
        self.edit.clicked.connect(self.edit_selected)
        self.toggle = tip(QPushButton(tr("Close to others")), tr("Open or close the "
                                                                 "selected persona "
                          "to conversations with other villages"), tr("Availability toggle"))
        self.toggle.clicked.connect(self.toggle_availability)
        self.remove = tip(QPushButton(tr("Remove…")), tr("Remove the selected persona "
                                                         "(asks first)"))
        self.remove.clicked.connect(self.remove_selected)
        self.talk = tip(QPushButton(tr("Start a conversation…")), tr("Let one of this village's "
                        "personas talk with a neighbour's persona that is open to it"))
        self.talk.clicked.connect(self.start_talk)
        self.talk_dialog: TalkDialog | None = None
        self.message = note()
        self.conversations = tip(QTableWidget(0, len(CONV_COLUMNS)), tr("Conversations with "
                                 "personas of other villages; select one for its transcript"),
                                 tr("Conversations"))
        self.conversations.setHorizontalHeaderLabels([tr(c) for c in CONV_COLUMNS])
        self.conversations.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.conversations.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.conversations.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.conversations.horizontalHeader().setStretchLastSection(True)
        self.conversations.itemSelectionChanged.connect(self._show_transcript)
        self.stop_talk = tip(QPushButton(tr("Stop our persona")), tr("Our persona says "
                                                                     "nothing more "
                             "in the selected conversation (the others may still finish)"),
                             tr("Stop the conversation"))
        self.stop_talk.clicked.connect(self.stop_selected)
        self.stop_talk.setEnabled(False)
        self.transcript = tip(QPlainTextEdit(), tr("The selected conversation, in the order every "
                              "village agrees on"), tr("Transcript"))
        self.transcript.setReadOnly(True)
        self._convs: tuple[Any, ...] = ()
        buttons = QHBoxLayout()
        for b in (self.add, self.edit, self.toggle, self.remove, self.talk):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(heading(tr("Personas")))
        layout.addWidget(note(tr("The AI personas this village hosts. Other villages see their "
                              "name, status and availability in this village's signed record.")))
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        talk_row = QHBoxLayout()
        talk_row.addWidget(note(tr("Conversations")), 1)
        talk_row.addWidget(self.stop_talk)
        layout.addLayout(talk_row)
        layout.addWidget(self.conversations, 1)
        layout.addWidget(self.transcript, 1)
        self._done.connect(self._on_done)
        self._selection()

    def selected(self) -> Persona | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.personas):
            return None
        return self.personas[rows[0].row()]

    def _selection(self) -> None:
        p = self.selected()
        running = self.bridge.latest().state is NodeState.RUNNING
        self.add.setEnabled(running)
        for b in (self.edit, self.toggle, self.remove):
            b.setEnabled(p is not None and running)
        self.toggle.setText(tr("Close to others") if p and p.availability == "open"
                            else tr("Open to others"))
        snap = self.bridge.latest()
        self.talk.setEnabled(running and bool(snap.personas)
                             and bool(open_partners(snap, time.time())))
        self.talk.setToolTip(
            tr("Let one of this village's personas talk with a neighbour's open persona")
            if self.talk.isEnabled() else tr("Needs a persona here and a neighbour's persona "
            "that is open to conversations (none is known now)"))

    def start_talk(self) -> None:
        snap = self.bridge.latest()
        theirs = open_partners(snap, time.time())
        if not snap.personas or not theirs:
            return
        self.talk_dialog = TalkDialog(self, snap.personas, theirs)
        self.talk_dialog.accepted.connect(self._talk_accepted)
        self.talk_dialog.open()

    def _talk_accepted(self) -> None:
        assert self.talk_dialog is not None
        mine, partner, turns = self.talk_dialog.choice()
        label = self.talk_dialog.partner.currentText()
        self.message.setText(tr("Asking {0}…").format(label))
        self.bridge.handle.start_conversation(mine, (partner,), turns).add_done_callback(
            lambda f: self._done.emit(tr("Not started: {0}").format(f.exception())
                                      if f.exception()
                                      else tr("Talking with {0}.").format(label)))

    def _open(self, persona: Persona | None) -> None:
        self.dialog = PersonaDialog(self, persona)
        self.dialog.accepted.connect(lambda d=self.dialog: self._dialog_accepted(d))
        self.dialog.open()

    def edit_selected(self) -> None:
        p = self.selected()
        if p is not None:
            self._open(p)

    def _dialog_accepted(self, dialog: PersonaDialog) -> None:
        v = dialog.values()
        h = self.bridge.handle
        if dialog.persona is None:
            name = v.pop("name")
            self._submit(h.add_persona(name, **v), tr("Added {0}.").format(name))
        else:
            self._submit(h.update_persona(dialog.persona.id, **v), tr("Saved {0}.").format(
                    v['name']))

    def toggle_availability(self) -> None:
        p = self.selected()
        if p is not None:
            to = "closed" if p.availability == "open" else "open"
            self._submit(self.bridge.handle.update_persona(p.id, availability=to),
                         tr("{0} is now {1}.").format(p.name, to))

    def remove_selected(self) -> None:
        p = self.selected()
        if p is None:
            return
        box = QMessageBox(QMessageBox.Icon.Question, tr("Remove persona"),
                          tr("Remove {0} from this village?").format(p.name),
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        def answered(button: Any) -> None:
            if box.standardButton(button) == QMessageBox.StandardButton.Yes:
                self._submit(self.bridge.handle.remove_persona(p.id), tr("Removed {0}.").format(
                        p.name))
        box.buttonClicked.connect(answered)
        self.confirm = box
        box.open()

    def _submit(self, future: Any, ok: str) -> None:
        self.message.setText(tr("saving…"))
        future.add_done_callback(
            lambda f: self._done.emit(tr("Not saved: {0}").format(f.exception())
                                      if f.exception() else ok))

    def _on_done(self, text: str) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #c5221f;" if text.startswith("Not ") else "")

    def _show_conversations(self, convs: tuple[Any, ...]) -> None:
        if convs == self._convs:
            return
        rows = self.conversations.selectionModel().selectedRows()
        keep = self._convs[rows[0].row()].id if rows and rows[0].row() < len(self._convs) \
            else None
        self._convs = convs
        self.conversations.setRowCount(len(convs))
        for row, c in enumerate(convs):
            cells = (c.persona, ", ".join(c.partners), str(c.messages),
                     tr("{0} of {1} entries").format(
                             c.last_checkpoint, c.entries) if c.last_checkpoint
                     else tr("not yet"),
                     c.error or (tr("equivocated: {0}").format(", ".join(c.equivocators))
                                 if c.equivocators else tr("stopped here") if c.stopped
                                 else tr("finished") if c.finished else tr("talking")))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.conversations.setItem(row, col, item)
            if c.id == keep:
                self.conversations.selectRow(row)
        self.conversations.resizeColumnsToContents()
        self._show_transcript()

    def selected_conversation(self) -> Any:
        rows = self.conversations.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self._convs):
            return None
        return self._convs[rows[0].row()]

    def stop_selected(self) -> None:
        c = self.selected_conversation()
        if c is not None:
            self.bridge.handle.stop_conversation(c.id).add_done_callback(
                lambda f: self._done.emit(tr("Not stopped: {0}").format(f.exception())
                                          if f.exception() else tr("{0} stopped.").format(
                                              c.persona.split(" at ")[0])))

    def _show_transcript(self) -> None:
        c = self.selected_conversation()
        self.stop_talk.setEnabled(c is not None and not c.stopped and not c.finished)
        if c is None:
            self.transcript.setPlainText("")
            return
        self.transcript.setPlainText("\n".join(f"{who}: {text}" for who, text in c.transcript))

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        self._show_conversations(snap.conversations)
        if snap.personas == self.personas:
            self._selection()
            return
        keep = self.selected()
        self.personas = snap.personas
        self.table.setRowCount(len(self.personas))
        for row, p in enumerate(self.personas):
            for col, text in enumerate((p.name, p.status, p.availability, str(p.capacity),
                                        p.backend)):
                item = QTableWidgetItem(text)
                item.setToolTip(p.description or p.name)
                self.table.setItem(row, col, item)
            if keep is not None and p.id == keep.id:
                self.table.selectRow(row)
        self._selection()
