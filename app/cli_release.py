"""`grove verify FILE` and `grove update [--download DIR]`.

`verify` checks a downloaded artifact's minisign signature (FILE.minisig beside it, or
`--sig`) against the release keys this build ships (resources/release_keys.txt), or a key
given with `--key`. For a signed `SHA256SUMS` it also checks every listed file found beside
it. Exit 0: verified; 1: refused, with the reason; 2: bad usage.

`update` runs the update check now (the gardener asking is consent, even with the daily check
off) against `--url` or the `update_url` setting; `--download DIR` also fetches this
platform's artifact, checked against the signed manifest's size and SHA-256. Nothing is
installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from app.cli_common import setup

EXIT_REFUSED = 1
EXIT_USAGE = 2


def add_parsers(sub: Any) -> None:
    verify = sub.add_parser("verify", help="check a downloaded Grove file's signature")
    verify.add_argument("file", help="the artifact (.deb, .tar.gz, installer, SHA256SUMS)")
    verify.add_argument("--sig", default="", help="its signature (default: FILE.minisig)")
    verify.add_argument("--key", default="", help="a minisign public key file to trust "
                        "instead of the release keys shipped with this build")
    verify.add_argument("--json", action="store_true")
    upd = sub.add_parser("update", help="check now whether a newer signed release exists")
    upd.add_argument("--url", default="", help="the release manifest (default: update_url)")
    upd.add_argument("--download", default="", metavar="DIR",
                     help="also fetch this platform's artifact into DIR, checked")
    upd.add_argument("--key", default="", help="a minisign public key file to trust instead "
                     "of the release keys shipped with this build")
    upd.add_argument("--json", action="store_true")


def _keys(args: argparse.Namespace) -> list[Any]:
    from core.release.signing import VerifyError, parse_public_key
    from core.resources import release_keys

    if args.key:
        return [parse_public_key(Path(args.key).read_text())]
    keys = release_keys()
    if not keys:
        raise VerifyError("This build trusts no release key (a development build).",
                          "Pass the publisher's public key with --key.")
    return keys


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_sums(listing: Path) -> list[tuple[str, str]]:
    """(file name, "ok" | "missing" | "MISMATCH") for each line of a sha256sum listing."""
    out = []
    for line in listing.read_text().splitlines():
        digest, _, name = line.partition("  ")
        name = name.lstrip("*").strip()
        if not name or len(digest) != 64:
            continue
        target = listing.parent / Path(name).name
        if not target.is_file():
            out.append((name, "missing"))
        else:
            out.append((name, "ok" if _sha256(target) == digest.lower() else "MISMATCH"))
    return out


def cmd_verify(args: argparse.Namespace) -> int:
    from core.release.signing import VerifyError, verify_file

    path = Path(args.file)
    sig = Path(args.sig) if args.sig else path.with_name(path.name + ".minisig")
    result: dict[str, Any] = {"file": str(path), "signature": str(sig)}
    try:
        key, signature = verify_file(path, sig, _keys(args))
    except (VerifyError, OSError) as e:
        reason = e.what if isinstance(e, VerifyError) else str(e)
        result.update(ok=False, reason=reason)
        print(json.dumps(result) if args.json else f"grove verify: REFUSED {path.name}: "
              f"{e}", file=sys.stdout if args.json else sys.stderr)
        return EXIT_REFUSED
    result.update(ok=True, key_id=key.id_hex, trusted_comment=signature.trusted_comment)
    sums = check_sums(path) if path.name.upper().startswith("SHA256SUMS") else []
    bad = [(n, st) for n, st in sums if st == "MISMATCH"]
    if sums:
        result["files"] = dict(sums)
    if bad:
        result.update(ok=False, reason=f"{len(bad)} listed file(s) do not match: "
                      + ", ".join(n for n, _ in bad))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"Verified: {path.name} is signed by release key {key.id_hex} "
              f"({signature.trusted_comment}).")
        for name, status in sums:
            print(f"  {status:<9}{name}")
        if bad:
            print(f"grove verify: REFUSED: {result['reason']}", file=sys.stderr)
    return EXIT_REFUSED if bad else 0


def cmd_update(args: argparse.Namespace) -> int:
    from core import __version__
    from core.config import load_settings
    from core.release import service, update
    from core.release.signing import VerifyError, parse_public_key
    from core.resources import release_keys

    paths = setup(args)
    url = args.url or load_settings(paths.settings_file).settings.update_url
    if not url:
        print("grove update: no release manifest URL: pass --url or set update_url "
              "(`grove limits set update_url=https://…/manifest.json`).", file=sys.stderr)
        return EXIT_USAGE
    state_file = paths.data_dir / service.STATE_FILE
    state = service.load_state(state_file)
    try:
        keys = [parse_public_key(Path(args.key).read_text())] if args.key else release_keys()
    except (VerifyError, OSError) as e:
        print(f"grove update: {e}", file=sys.stderr)
        return EXIT_USAGE
    result = update.check(url, keys, __version__, service.newest_seen(state, url))
    service.record(state_file, url, result, time.time())
    out: dict[str, Any] = {"status": result.status, "reason": result.reason,
                           "version": result.version, "current": __version__}
    code = 0 if result.status in ("available", "current") else EXIT_REFUSED
    if args.download and result.status == "available":
        if result.artifact is None:
            out["download"] = "no artifact for this platform"
            code = EXIT_REFUSED
        else:
            try:
                got = update.download(result.artifact, Path(args.download), url)
                out["download"] = str(got)
            except (update.DownloadError, ValueError) as e:
                out["download"] = f"refused: {e}"
                code = EXIT_REFUSED
    if args.json:
        print(json.dumps(out))
    else:
        print(result.reason)
        if "download" in out:
            print(f"download: {out['download']}")
    return code
