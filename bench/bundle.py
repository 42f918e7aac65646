"""How big the frozen build is and how fast it starts.

`python -m bench.bundle --json`, after `.venv/bin/pyinstaller build.spec` (and, for `deb_mb`,
`installers/linux/package`). Fields:

- bundle_mb: the one-folder build (dist/grove), every file's size summed, in MB (10^6 bytes);
- deb_mb, tarball_mb: the packages, when found (dist/release or --deb);
- smoke_start_seconds: median over `--runs` of `grove --smoke-test`'s own `start_seconds`,
  from the process's creation until the node's first snapshot is in the tray UI (offscreen);
- smoke_total_seconds: the median wall time of the whole smoke test (native checks and the
  node's stop included; torch only with --compute);
- largest: the five largest top-level parts of the bundle, for the next trim.

Goal (installers/README.md): bundle ≤ 250 MB without torch's CUDA libraries, smoke start ≤ 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import print_result

ROOT = Path(__file__).resolve().parent.parent


def tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def largest(bundle: Path, n: int = 5) -> list[tuple[str, float]]:
    inner = bundle / "_internal"
    parts = [(p.name, tree_bytes(p) if p.is_dir() else p.stat().st_size)
             for p in inner.iterdir() if not p.is_symlink()] if inner.is_dir() else []
    parts.sort(key=lambda x: -x[1])
    return [(name, round(size / 1e6, 1)) for name, size in parts[:n]]


def smoke(program: Path, env: dict[str, str], require_torch: bool) -> dict[str, object]:
    began = time.monotonic()
    cmd = [str(program), "--smoke-test", *(["--require-torch"] if require_torch else [])]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - began
    try:
        out = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit(f"the smoke test printed no result (exit {done.returncode}): "
                         f"{done.stderr[-2000:]}") from None
    if done.returncode != 0 or not out.get("ok"):
        raise SystemExit(f"the smoke test failed: {json.dumps(out)}")
    out["wall_seconds"] = wall
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bundle")
    ap.add_argument("--bundle", default=str(ROOT / "dist" / "grove"))
    ap.add_argument("--program", default="", help="the grove to smoke-test (default: the "
                    "bundle's; CI passes the one installed from the .deb)")
    ap.add_argument("--deb", default="")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--compute", default="", help="a compute pack folder: also time torch")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    bundle = Path(args.bundle)
    program = Path(args.program) if args.program else bundle / "grove"
    if not program.is_file():
        raise SystemExit(f"no build at {bundle}: run .venv/bin/pyinstaller build.spec first")
    release = ROOT / "dist" / "release"
    debs = [Path(args.deb)] if args.deb else sorted(release.glob("*.deb"))
    tarballs = sorted(release.glob("grove-village-*.tar.gz"))
    env = {k: v for k, v in os.environ.items() if k != "GROVE_COMPUTE_PATH"}
    if args.compute:
        env["GROVE_COMPUTE_PATH"] = args.compute
    runs = [smoke(program, env, bool(args.compute)) for _ in range(args.runs)]
    result = {
        "bench": "bundle", "platform": sys.platform, "runs": args.runs,
        "bundle_mb": round(tree_bytes(bundle) / 1e6, 1),
        "deb_mb": round(debs[-1].stat().st_size / 1e6, 1) if debs else None,
        "tarball_mb": round(tarballs[-1].stat().st_size / 1e6, 1) if tarballs else None,
        "smoke_start_seconds": round(statistics.median(
            float(str(r["start_seconds"])) for r in runs), 3),
        "smoke_total_seconds": round(statistics.median(
            float(str(r["wall_seconds"])) for r in runs), 3),
        "torch": runs[-1]["torch"] if args.compute else "not measured (no --compute)",
        "largest": largest(bundle),
        "goal": {"bundle_mb": 250, "smoke_start_seconds": 2.0},
    }
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
