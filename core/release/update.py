"""The update check (off by default; the gardener turns it on and chooses the URL).

A release publishes `manifest.json` and its minisign signature `manifest.json.minisig`. The
check fetches both (capped, with a timeout), verifies the signature against the keys this
build trusts, validates the manifest's schema, and compares versions. It never installs
anything: it tells the gardener that an update exists, and `download` fetches an artifact
the manifest names, checking its size and SHA-256 before it is kept.

Refused, with the reason: no signature (an unsigned manifest), a signature by an untrusted
key or over other bytes (tampered), a malformed manifest, a version older than this build
(a downgrade) or older than the newest manifest already seen (a replayed one).
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

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


def fetch_capped(url: str, cap: int) -> bytes:
    """GET `url`, at most `cap` bytes (more is an error: nothing is read past the cap)."""
    req = urllib.request.Request(url, headers={"User-Agent": "grove-village-update-check"})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
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
             current: str, *, newest_seen: str = "", where: str = "") -> UpdateResult:
    """The decision, given the fetched bytes (pure: no network, no clock)."""
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
          fetch: Fetch = fetch_capped) -> UpdateResult:
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
    return evaluate(manifest, sig, keys, current, newest_seen=newest_seen)


def download(artifact: Artifact, dest_dir: Path, base_url: str = "") -> Path:
    """Fetch `artifact` into `dest_dir`, checking size and SHA-256 as it streams; a partial
    or mismatched file is deleted and DownloadError says why. Nothing is installed."""
    url = urllib.parse.urljoin(base_url, artifact.url)
    check_url(url)
    name = Path(artifact.name).name
    if not name or name != artifact.name:
        raise DownloadError(f"the artifact name {artifact.name!r} is not a plain file name")
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / name
    part = final.with_name(name + ".part")
    try:
        _stream(url, part, artifact)
    except (OSError, urllib.error.URLError) as e:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{name} could not be downloaded: {e}") from None
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    part.replace(final)
    return final


def _stream(url: str, part: Path, artifact: Artifact) -> None:
    h = hashlib.sha256()
    got = 0
    with urllib.request.urlopen(url, timeout=TIMEOUT) as resp, open(part, "wb") as out:
        while chunk := resp.read(CHUNK):
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
