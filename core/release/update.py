"""The update check (off by default; the gardener turns it on and chooses the URL).

A release publishes `manifest.json` and its minisign signature `manifest.json.minisig`. The
check fetches both (capped, with a timeout), verifies the signature against the keys this
build trusts, validates the manifest's schema, and compares versions. It never installs
anything: it tells the gardener that an update exists, and `download` fetches an artifact
the manifest names, checking its size and SHA-256 before it is kept.

Refused, with the reason: no signature (an unsigned manifest), a signature by an untrusted
key or over other bytes (tampered), a malformed manifest, a version older than this build
(a downgrade) or older than the newest manifest already seen (a replayed one), a manifest
issued more than MAX_AGE ago (a freeze: a mirror that keeps serving an old, validly signed
manifest to hide a newer release; the release process re-issues the manifest at least every
30 days) or dated in the future. A redirect may never leave https (nor loopback http), and a
download has a total deadline, so a server that drips bytes cannot hold it open forever.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from packaging.version import InvalidVersion, Version

from core.release.signing import PublicKey, VerifyError, parse_signature, verify
from core.release.urls import check_url

MANIFEST_SCHEMA = "grove-release-manifest"
MANIFEST_V = 1
MAX_MANIFEST = 64 * 1024
MAX_SIG = 4096
TIMEOUT = 15.0
CHUNK = 1 << 20
MAX_AGE = 45 * 86400.0       # s: an older manifest is refused (a freeze attack)
MAX_AHEAD = 3600.0           # s: how far in the future a manifest's date may be (clock skew)
DOWNLOAD_FLOOR = 120.0       # s every download may take, plus one second per MIN_RATE bytes
MIN_RATE = 50_000            # bytes/s: a download slower than this overall is abandoned
DOWNLOAD_CEILING = 4 * 3600.0

Fetch = Callable[[str, int], bytes]


class Artifact(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    platform: str  # "linux-x86_64", "windows-x86_64", "macos-arm64", "any"
    url: str
    sha256: str
    size: int


class ReleaseManifest(msgspec.Struct, forbid_unknown_fields=True):
    schema: str
    v: int
    version: str
    issued_at: float
    artifacts: list[Artifact]
    notes: str = ""


@dataclass(frozen=True)
class UpdateResult:
    status: str  # "available", "current", "refused", "unreachable"
    reason: str  # a plain sentence
    version: str = ""
    artifact: Artifact | None = None
    manifest: ReleaseManifest | None = None


class DownloadError(Exception):
    pass


def this_platform() -> str:
    system = {"linux": "linux", "win32": "windows", "darwin": "macos"}.get(sys.platform,
                                                                           sys.platform)
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "aarch64": "arm64"}.get(machine, machine)
    return f"{system}-{machine}"


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL the update check could have been given itself."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str,  # noqa: PLR0917
                         headers: Any, newurl: str) -> Any:  # (urllib's signature)
        try:
            check_url(newurl)
        except ValueError:
            raise urllib.error.URLError(f"a redirect to {newurl} was refused (it "
                                        "leaves https)") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpsOnlyRedirects)


def _open(url: str) -> Any:
    req = urllib.request.Request(url, headers={"User-Agent": "grove-village-update-check"})
    return _OPENER.open(req, timeout=TIMEOUT)


def fetch_capped(url: str, cap: int) -> bytes:
    """GET `url`, at most `cap` bytes (more is an error: nothing is read past the cap)."""
    with _open(url) as resp:
        data = resp.read(cap + 1)
    if len(data) > cap:
        raise ValueError(f"{url} is larger than {cap} bytes")
    return bytes(data)


def parse_manifest(data: bytes) -> ReleaseManifest:
    try:
        m = msgspec.json.decode(data, type=ReleaseManifest)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise ValueError(f"the manifest is malformed: {e}") from None
    if m.schema != MANIFEST_SCHEMA or m.v != MANIFEST_V:
        raise ValueError(f"the manifest is {m.schema} v{m.v}, not {MANIFEST_SCHEMA} "
                         f"v{MANIFEST_V}")
    Version(m.version)  # InvalidVersion is a ValueError
    for a in m.artifacts:
        if len(a.sha256) != 64 or any(c not in "0123456789abcdef" for c in a.sha256):
            raise ValueError(f"artifact {a.name!r} has no valid sha256")
        if a.size <= 0:
            raise ValueError(f"artifact {a.name!r} has no size")
    return m


def evaluate(manifest_bytes: bytes, sig_bytes: bytes | None, keys: Sequence[PublicKey],
             current: str, *, now: float, newest_seen: str = "", where: str = ""
             ) -> UpdateResult:
    """The decision, given the fetched bytes and the time (pure: no network, no clock)."""
    if sig_bytes is None:
        return UpdateResult("refused", "The release manifest is unsigned; it was ignored.")
    if not keys:
        return UpdateResult("refused", "This build trusts no release key, so no manifest "
                            "can be checked.")
    try:
        verify(parse_signature(sig_bytes), keys, data=manifest_bytes)
    except VerifyError as e:
        return UpdateResult("refused", f"The release manifest failed its signature check: "
                            f"{e.what} It was ignored.")
    try:
        manifest = parse_manifest(manifest_bytes)
    except (ValueError, InvalidVersion) as e:
        return UpdateResult("refused", f"The signed release manifest is not usable: {e}.")
    age = now - manifest.issued_at
    if age > MAX_AGE:
        return UpdateResult("refused", f"The release manifest was issued {age / 86400:.0f} "
                            f"days ago (at most {MAX_AGE / 86400:.0f} are accepted): a stale "
                            "manifest that could hide a newer release was ignored.",
                            manifest.version, manifest=manifest)
    if age < -MAX_AHEAD:
        return UpdateResult("refused", "The release manifest is dated in the future "
                            f"({-age / 3600:.1f} h ahead of this computer's clock); it was "
                            "ignored. Check the computer's date.", manifest.version,
                            manifest=manifest)
    offered, mine = Version(manifest.version), Version(current)
    if newest_seen and offered < Version(newest_seen):
        return UpdateResult("refused", f"The manifest offers {manifest.version}, older than "
                            f"{newest_seen} already seen from this URL: a replayed manifest "
                            "was ignored.", manifest.version, manifest=manifest)
    if offered < mine:
        return UpdateResult("refused", f"The manifest offers {manifest.version}, older than "
                            f"this build ({current}): a downgrade was refused.",
                            manifest.version, manifest=manifest)
    if offered == mine:
        return UpdateResult("current", f"Grove {current} is the latest release.",
                            manifest.version, manifest=manifest)
    plat = where or this_platform()
    artifact = next((a for a in manifest.artifacts if a.platform in (plat, "any")), None)
    text = f"Grove {manifest.version} is available (this is {current})."
    if artifact is None:
        text += f" It has no build for {plat} yet."
    return UpdateResult("available", text, manifest.version, artifact, manifest)


def check(url: str, keys: Sequence[PublicKey], current: str, newest_seen: str = "",
          fetch: Fetch = fetch_capped, *, now: float | None = None) -> UpdateResult:
    try:
        check_url(url)
        manifest = fetch(url, MAX_MANIFEST)
    except ValueError as e:
        return UpdateResult("refused", f"The update check cannot use {url}: {e}.")
    except (OSError, urllib.error.URLError) as e:
        return UpdateResult("unreachable", f"The update server could not be reached: {e}.")
    try:
        sig: bytes | None = fetch(url + ".minisig", MAX_SIG)
    except urllib.error.HTTPError as e:
        if e.code != 404:
            return UpdateResult("unreachable", f"The manifest's signature could not be "
                                f"fetched: {e}.")
        sig = None
    except (OSError, ValueError) as e:
        return UpdateResult("unreachable", f"The manifest's signature could not be fetched: "
                            f"{e}.")
    return evaluate(manifest, sig, keys, current, newest_seen=newest_seen,
                    now=time.time() if now is None else now)


def download(artifact: Artifact, dest_dir: Path, base_url: str = "",
             deadline: float | None = None) -> Path:
    """Fetch `artifact` into `dest_dir`, checking size and SHA-256 as it streams, within
    `deadline` s in all (default: `download_deadline`); a partial or mismatched file is
    deleted and DownloadError says why. Nothing is installed."""
    url = urllib.parse.urljoin(base_url, artifact.url)
    check_url(url)
    name = Path(artifact.name).name
    if not name or name != artifact.name:
        raise DownloadError(f"the artifact name {artifact.name!r} is not a plain file name")
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / name
    part = final.with_name(name + ".part")
    try:
        _stream(url, part, artifact, deadline)
    except (OSError, urllib.error.URLError) as e:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{name} could not be downloaded: {e}") from None
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    part.replace(final)
    return final


def download_deadline(size: int) -> float:
    """Seconds a download of `size` bytes may take in all."""
    return min(DOWNLOAD_CEILING, DOWNLOAD_FLOOR + size / MIN_RATE)


def _stream(url: str, part: Path, artifact: Artifact, deadline: float | None = None) -> None:
    h = hashlib.sha256()
    got = 0
    allowed = download_deadline(artifact.size) if deadline is None else deadline
    give_up = time.monotonic() + allowed
    with _open(url) as resp, open(part, "wb") as out:
        while chunk := resp.read1(CHUNK):  # what one receive brought: the deadline holds
            if time.monotonic() > give_up:
                raise DownloadError(f"{artifact.name} took longer than {allowed:.0f} s "
                                    f"({got} of {artifact.size} bytes); try again later")
            got += len(chunk)
            if got > artifact.size:
                raise DownloadError(f"{artifact.name} is larger than the manifest says "
                                    f"({artifact.size} bytes)")
            h.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if got != artifact.size:
        raise DownloadError(f"{artifact.name} was cut short: {got} of {artifact.size} bytes")
    if h.hexdigest() != artifact.sha256:
        raise DownloadError(f"{artifact.name}'s SHA-256 does not match the signed manifest")
