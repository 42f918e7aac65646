"""Which update URLs are acceptable (pure: used by the settings' validation too)."""

from __future__ import annotations

import urllib.parse

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_url(url: str) -> str:
    """An update URL must be https, or http to this machine (tests, a local mirror)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK:
        return url
    raise ValueError("must start with https:// (or http://127.0.0.1 for a local mirror)")
