"""Receipts and the ledger against one hostile input: figures past their range are refused
with the reason (a running total beyond SQLite's integers used to stop the writer thread), and
an item the store cannot hold fails alone while the writer goes on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.ledger import receipts as rc
from core.ledger.chain import verify_file
from core.ledger.store import Ledger
from tests.test_ledger import ME, ME_KEY, THEM, THEM_KEY, receipt


@pytest.mark.parametrize(("seq", "total", "at", "words"), [
    (1, 2**63, None, "out of range"),            # past SQLite's 64-bit integers
    (2**41, 16, None, "out of range"),
    (1, 16, float("nan"), "must be a date"),
    (1, 16, -1.0, "must be a date"),
])
def test_figures_out_of_range_are_refused(seq: int, total: int, at: float | None,
                                          words: str) -> None:
    r = rc.Receipt(rc.VERSION, ME, THEM, "swarm", 16, total, seq, "ab" * 32,
                   time.time() if at is None else at)
    wire = rc.encode(rc.worker_sign(rc.consumer_sign(r, THEM_KEY.sign), ME_KEY.sign))
    with pytest.raises(rc.ReceiptRejected, match=words):
        rc.check(wire, time.time())


def test_an_item_the_store_cannot_hold_fails_alone_and_the_writer_goes_on(
        tmp_path: Path) -> None:
    lg = Ledger(tmp_path / "ledger.db", ME)
    try:
        assert lg.add(receipt(1)) > 0
        bad = lg.reject_unpaid(0, "swarm", 5, None)  # type: ignore[arg-type]
        with pytest.raises(rc.ReceiptRejected, match="cannot hold"):
            bad.result(30)
        assert lg.add(receipt(2)) > 0  # the writer is alive and the chain intact
        assert lg.reject_unpaid(0, "swarm", 5, "x" * 10_000).result(30) > 0
    finally:
        lg.close()
    report = verify_file(tmp_path / "ledger.db")
    assert report.ok, report
