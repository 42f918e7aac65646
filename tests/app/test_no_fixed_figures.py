"""No figure on the dashboard is hard-coded: every number a page shows comes from the snapshot.

The pages are rendered twice, from two snapshots in which every measured number, every
setting, every count and every time differs (drawn from two seeds), and every number in
every widget's text is compared, position by position: a number that stays the same in the
same widget did not come from the snapshot (the seeds' values never meet: one draws from the
lower half of each range, the other from the upper). Ids, addresses, dates and clock times
are left out. The tray's tooltip is checked the same way."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QTableWidget,
    QTextEdit,
    QTreeWidget,
    QWidget,
)

from app.dashboard import PAGES, Dashboard
from core import snapshot as sn
from core.names import village_name
from core.personas.model import Persona
from core.settings_schema import DECLARATIONS, Settings
from core.telemetry import FIELDS
from tests.app.fake_node import FakeHandle

NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?!\w)")  # not part of a word ("P0", "12D3…")
IDS = re.compile(r"12D3Ko\S*|/ip[46]/\S*|\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}")  # ids, addresses, times


def _settings(rng: random.Random, half: tuple[float, float]) -> Settings:
    """Every numeric limit at a random value within its bounds (distinct per seed)."""
    changes: dict[str, Any] = {}
    for d in DECLARATIONS:
        if d.type in (int, float) and d.lo is not None and d.hi is not None and not d.choices:
            hi = min(d.hi, d.lo + 97)
            lo = max(d.lo, 1) if hi > 1 else d.lo
            value = round(lo + (hi - lo) * rng.uniform(*half))
            if d.type is float:
                value = float(value)
            changes[d.name] = value
    changes.update(participate=True)
    return Settings().with_changes(**changes)


def snapshot(seed: int) -> dict[str, Any]:
    """The fields of a rich snapshot: every section filled, every number drawn from `seed`."""
    rng = random.Random(seed)
    now = time.time()
    n = 2 + seed  # list lengths differ between the seeds too

    half = (0.05, 0.45) if seed == 1 else (0.55, 0.95)  # the seeds' values never meet

    def f(lo: float = 1.0, hi: float = 99.0) -> float:
        return round(lo + (hi - lo) * rng.uniform(*half), 2)

    def i(lo: int = 2, hi: int = 97) -> int:
        return round(lo + (hi - lo) * rng.uniform(*half))

    ago = [now - f(30, 3000) for _ in range(8)]
    villages = tuple(sn.VillageView(
        peer_id=f"12D3KooWVillage{k}x{seed}", tier="cpu", services=("avg",), region="eu",
        personas=(f"P{k}",), gardener_online=k % 2 == 0, reachability="direct",
        issued_at=ago[0], expires_at=now + f(60, 600), bandwidth="fast",
        agent_memory_mb=i(100, 9000)) for k in range(n + 1))
    agg = sn.HealthAggregate(means=tuple((name, f(0.01, 0.99)) for name in FIELDS),
                             villages=float(i(5, 90)), uncertainty=f(0.01, 0.4),
                             members_last_round=i(2, 9), rounds=i(2, 9), at=ago[1])
    credit_events = tuple(sn.CreditEvent(
        kind="avg", credits=f(), status=("pending", "verified")[k % 2], reason="",
        at=ago[k], peer=f"12D3KooWPeer{k}") for k in range(n))
    return dict(
        state=sn.NodeState.RUNNING, peer_id=f"12D3KooWSelf{seed}",
        listen_addrs=(f"/ip4/127.0.0.1/tcp/{i(1000, 9000)}",),
        peers=tuple(sn.PeerView(f"12D3KooWPeer{k}", f"/ip4/127.0.0.1/tcp/{i(1000, 9000)}",
                                rtt_ms=f()) for k in range(n)),
        started_at=now - f(600, 90_000), participating=True,
        services=tuple(sn.ServiceStatus(f"service{k}", "running", restarts=i(0, 5))
                       for k in range(n)),
        tier="cpu", tier_reason="no GPU", hardware=f"CPU, {i(2, 64)} threads, {i(4, 128)} GB",
        governor=sn.GovernorStatus(may_compute=True, threads=i(1, 16), duty_cycle=f(0.1, 0.9),
                                   cpu_share=f(0.05, 0.95)),
        compute=sn.ComputeStatus(threads_running=i(1, 8), progress=i(100, 9000),
                                 last_progress_at=ago[2]),
        villages=villages, dht_peers=i(), record_acks=i(), reachability="direct",
        telemetry=sn.TelemetryView(local=tuple((name, f(0.01, 0.99)) for name in FIELDS),
                                   regional=agg, network=replace(agg, villages=float(i(5, 90)))),
        settings=_settings(rng, half),
        usage=sn.UsageView(cpu_percent=f(1, 40), rss_mb=f(100, 900), upload_kbps=f(1, 900),
                           download_kbps=f(1, 900), reserved_mb=f(1, 90),
                           memory_refusal=f"averaging needs {f()} MB", at=now),
        personas=tuple(Persona(id=f"p{k}", name=f"Persona {chr(65 + k)}", capacity=i(1, 8),
                               seq=i(1, 50), updated_at=ago[3]) for k in range(n)),
        training=(sn.TrainingView(
            project="digits", title="Digits", opted_in=True, running=True, status="training",
            rule="mean", rule_used="mean", epoch=i(), samples_contributed=i(1000, 90_000),
            samples_per_second=f(), peers=i(), last_members=i(), accuracy=f(0.5, 0.99),
            checks_passed=i(), checks_failed=i()),),
        swarm=sn.SwarmView(
            serving=True, state="online", status="serving", model="small-lm", start=i(0, 3),
            end=i(4, 8), throughput=f(), compute_forward=f(), compute_train=f(),
            requests_last_hour=i(), refused=i(), queue=i(), swarm_servers=i(),
            swarm_min_throughput=f(), train_state="training", train_loss=f(0.1, 3),
            held_out_loss=f(0.1, 3), chance_loss=f(3, 5), train_samples_per_s=f(),
            train_micro_batches=i()),
        credits=sn.CreditsView(
            running=True, balance=f(100, 999), honoured=f(1, 99), trusted=i(), pending=f(),
            rejected=f(), today=f(), this_week=f(100, 999), last_hour=f(),
            by_kind=(("avg", f()), ("swarm", f())),
            history=tuple((time.strftime("%Y-%m-%d", time.localtime(now - k * 86400)), f())
                          for k in range(n, 0, -1)),
            events=credit_events, receipts=i(), rates=(("avg", f()), ("swarm", f()))),
        activity=sn.ActivityView(
            measured=True, cpu_seconds_today=f(600, 30_000), cpu_seconds_week=f(40_000, 90_000),
            sent_today=i(10_000, 900_000), received_today=i(10_000, 900_000),
            sent_week=i(2_000_000, 9_000_000), received_week=i(2_000_000, 9_000_000),
            allowed_seconds_today=f(600, 9000),
            cpu_hours=tuple((now - k * 3600, f(0.1, 0.9)) for k in range(n * 10))),
        conversations=(sn.ConversationView(
            id=f"c{seed}", persona="Persona A at this village",
            partners=(f"Persona B at {village_name('12D3KooWPeer1')}",), entries=i(),
            messages=i(), heads=i(1, 3), last_checkpoint=i(), equivocators=(), error="",
            transcript=(("Persona A", f"hello {i()}"),)),),
    )


def texts(dash: Dashboard) -> Iterator[tuple[str, str]]:
    """(where, text) for every visible text on every page."""
    for page_name in PAGES:
        dash.show_page(page_name)
        QApplication.processEvents()
        page = dash.pages[PAGES.index(page_name)]
        for k, w in enumerate(page.findChildren(QWidget)):
            where = f"{page_name}/{type(w).__name__}#{k}:{w.objectName()}"
            if isinstance(w, QLabel | QAbstractButton | QLineEdit | QAbstractSpinBox):
                yield where, w.text()
            elif isinstance(w, QTextEdit | QPlainTextEdit):
                yield where, w.toPlainText()
            elif isinstance(w, QTableWidget):
                for r in range(w.rowCount()):
                    for c in range(w.columnCount()):
                        item = w.item(r, c)
                        yield f"{where}[{r},{c}]", item.text() if item else ""
                for c in range(w.columnCount()):
                    head = w.horizontalHeaderItem(c)
                    yield f"{where}[head {c}]", head.text() if head else ""
            elif isinstance(w, QTreeWidget):
                for r in range(w.topLevelItemCount()):
                    item = w.topLevelItem(r)
                    yield f"{where}[{r}]", " | ".join(item.text(c) for c in
                                                      range(w.columnCount()))
            elif isinstance(w, QListWidget):
                for r in range(w.count()):
                    yield f"{where}[{r}]", w.item(r).text()


def numbers(text: str) -> list[str]:
    return NUMBER.findall(IDS.sub(" ", text))


def test_every_number_on_the_pages_comes_from_the_snapshot(
        fake: tuple[FakeHandle, Dashboard]) -> None:
    handle, dash = fake
    rendered = []
    for seed in (1, 2):
        handle.publish(**snapshot(seed))
        QApplication.processEvents()
        rendered.append(dict(texts(dash)))
    a, b = rendered
    shown = sum(1 for t in a.values() if NUMBER.search(t))
    assert shown >= 60, f"only {shown} texts with numbers: is every page filled?"
    fixed = []
    for where, text in a.items():
        # position by position: the k-th number of one rendering against the other's
        same = [x for x, y in zip(numbers(text), numbers(b.get(where, "")), strict=False)
                if x == y]
        fixed += [f"{where}: {num!r} in {text[:120]!r}" for num in same]
    assert not fixed, "numbers that did not follow the snapshot:\n" + "\n".join(fixed)


def test_every_number_in_the_tray_comes_from_the_snapshot() -> None:
    """The tray's tooltip (status, credits and peers lines), the same way."""
    from app.state import tray_state

    now = time.time()
    a, b = (tray_state(sn.NodeSnapshot(**snapshot(seed)), now).tooltip for seed in (1, 2))
    assert len(numbers(a)) >= 4, a
    same = [x for x, y in zip(numbers(a), numbers(b), strict=False) if x == y]
    assert not same, (same, a, b)
