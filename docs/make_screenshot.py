"""Render every dashboard page of a live local village (three real nodes on loopback, village
health averaged every 10 s, all three training the digits project - and crediting each other
for it -, the village serving SWARM blocks, its persona talking with a neighbour's) to PNGs:
docs/img/dashboard.png (Overview) and docs/img/dashboard-<page>.png; and, where Chromium is
installed, the same village's web dashboard (`grove node --web`) to docs/img/web-dashboard.png.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_screenshot.py docs/img
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication

from app.bridge import NodeBridge
from app.dashboard import PAGES, Dashboard
from core.handle import NodeHandle
from core.node import NodeConfig


def main(out: Path) -> None:
    app = QApplication([])
    env = {"GROVE_HOME": tempfile.mkdtemp(), "GROVE_KEY_STORE": "file"}
    base = {"listen_host": "127.0.0.1", "use_default_bootstrap": False,
            "telemetry_period_s": 10, "region": "eu-west", "training_period_s": 5.0,
            "training_projects": ("digits",)}
    village = NodeHandle(NodeConfig.load("village", env=env, overrides={
        **base, "participate": True, "swarm_serve": True, "swarm_max_blocks": 4,
        "village_name": "Anna's garden"}))
    village.start()
    ada = village.add_persona("Ada", description="Answers in verse", status="running",
                              capacity=2).result(10)
    village.add_persona("Basho", availability="invitation").result(10)
    neighbours = [NodeHandle(NodeConfig.load(f"neighbour-{i}", env=env, overrides={
        **base, "participate": True, "bootstrap": (village.snapshot().listen_addrs[0],)}))
        for i in range(2)]
    for n in neighbours:
        n.start()
    kit = neighbours[0].add_persona("Kit", status="running", availability="open").result(10)
    while not village.snapshot().peers:
        time.sleep(0.1)
    village.start_conversation(ada.id, ((neighbours[0].snapshot().peer_id, kit.id),),
                               turns=3).result(30)
    dashboard = Dashboard(NodeBridge(village))
    dashboard.resize(980, 700)
    dashboard.show()
    deadline = time.time() + 180

    def ready() -> bool:
        s = village.snapshot()
        return (len(s.villages) >= 2 and bool(s.peers) and s.peers[0].rtt_ms is not None
                and len(dashboard.history.points) >= 3
                and any(t.epoch >= 3 and t.peers >= 2 for t in s.training)
                and s.credits.receipts >= 1 and s.swarm.state == "online"
                and any(c.last_checkpoint >= 6 for c in s.conversations))
    while time.time() < deadline and not ready():
        app.processEvents()
        time.sleep(0.05)
    out.mkdir(parents=True, exist_ok=True)
    for title in PAGES:
        dashboard.show_page(title)
        if title == "Personas":
            dashboard.personas.conversations.selectRow(0)  # its transcript shows below
        app.processEvents()
        name = "dashboard.png" if title == "Overview" else \
            f"dashboard-{title.lower().split()[-1]}.png"
        dashboard.grab().save(str(out / name))
    _web_screenshot(village, out)
    village.stop()
    for n in neighbours:
        n.stop()


def _web_screenshot(village: NodeHandle, out: Path) -> None:
    import shutil
    import subprocess

    from app.web import WebDashboard, load_token

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("no Chromium: web-dashboard.png not made", file=sys.stderr)
        return
    web = WebDashboard(village, "127.0.0.1", 0,
                       load_token(village.config.paths.data_dir)).start()
    try:
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                            "--no-first-run", f"--user-data-dir={profile}",
                            "--window-size=1000,1500", "--hide-scrollbars",
                            f"--screenshot={out / 'web-dashboard.png'}", web.url],
                           capture_output=True, timeout=90, check=True)
    finally:
        web.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
