"""`grove train`: the training projects this village may take part in, its progress in each,
and opting in or out (a running node starts or stops within a second)."""

from __future__ import annotations

import argparse
import json

from app.cli_common import setup
from core.errors import SettingsError


def cmd_train(args: argparse.Namespace) -> int:
    from core.config import load_settings, save_settings
    from core.status_files import TRAINING_FILE
    from core.training.collab import PROJECTS

    paths = setup(args)
    settings = load_settings(paths.settings_file).settings
    if args.project:
        if args.project not in PROJECTS:
            raise SettingsError(f"There is no training project '{args.project}'.",
                                f"Known: {', '.join(PROJECTS)}.")
        if args.action not in ("on", "off"):
            raise SettingsError("Say `on` or `off` after the project's name.",
                                f"e.g. grove train {args.project} on")
        chosen = [p for p in settings.training_projects if p != args.project]
        if args.action == "on":
            chosen.append(args.project)
        settings = settings.with_changes(training_projects=tuple(chosen))
        save_settings(paths.settings_file, settings)
        state = "opted in to" if args.action == "on" else "opted out of"
        print(f"You {state} '{args.project}'; a running node applies it within a second."
              + ("" if settings.participate or args.action == "off" else
                 " Participation is off: it trains once you turn participation on."))
    running = paths.runtime_file.exists()
    progress: dict[str, dict[str, object]] = {}
    if running:
        try:
            progress = {v["project"]: v for v in json.loads(
                (paths.data_dir / TRAINING_FILE).read_text())}
        except (OSError, ValueError):
            progress = {}
    rows = []
    for name, spec in PROJECTS.items():
        p = progress.get(name, {})
        rows.append({"project": name, "title": spec.title,
                     "opted_in": name in settings.training_projects,
                     "rule": settings.training_rule or spec.rule,
                     "status": p.get("status", "no node running" if not running else "-"),
                     "step": p.get("epoch"), "accuracy": p.get("accuracy"),
                     "samples_contributed": p.get("samples_contributed"),
                     "peers": p.get("peers")})
    if args.json:
        print(json.dumps({"node_running": running, "projects": rows}))
        return 0
    if args.project:
        return 0
    for r in rows:
        acc = f"{100 * r['accuracy']:.1f}%" if isinstance(r["accuracy"], float) else "-"
        print(f"{r['project']:<10}{'opted in' if r['opted_in'] else 'not opted in':<14}"
              f"rule {r['rule']:<16}step {r['step'] if r['step'] is not None else '-':<6}"
              f"accuracy {acc:<8}{r['status']}")
        print(f"{'':<10}{r['title']}")
    return 0
