"""Where a node keeps its state.

`GROVE_HOME=<dir>` puts everything (settings, data, logs) under `<dir>/<profile>`; without it
the platform's own folders are used (platformdirs), one sub-folder per profile. Profiles let
several nodes live apart on one machine, each with its own identity.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from core.errors import SettingsError

APP_NAME = "grove-village"
DEFAULT_PROFILE = "default"
_PROFILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class NodePaths:
    profile: str
    config_dir: Path
    data_dir: Path
    log_dir: Path
    home: Path | None  # GROVE_HOME, when set

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.toml"

    @property
    def runtime_file(self) -> Path:
        """Written while the node runs: its pid, peer id and listen addresses."""
        return self.data_dir / "runtime.json"

    @property
    def keyring_username(self) -> str:
        """The keyring entry's user name: the profile, plus the home folder when one is set,
        so two GROVE_HOMEs with the same profile name never share a key."""
        if self.home is None:
            return self.profile
        digest = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:12]
        return f"{self.profile}@{digest}"

    def ensure(self) -> NodePaths:
        for d in (self.config_dir, self.data_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self


def check_profile(name: str) -> str:
    if not _PROFILE_RE.match(name):
        raise SettingsError(
            f"The profile name {name!r} is not usable.",
            "Use letters, digits, '.', '_' or '-' (up to 64 characters).",
        )
    return name


def node_paths(profile: str = DEFAULT_PROFILE, env: dict[str, str] | None = None) -> NodePaths:
    env = dict(os.environ) if env is None else env
    profile = check_profile(profile)
    home = env.get("GROVE_HOME")
    if home:
        base = Path(home).expanduser() / profile
        return NodePaths(profile, base, base / "data", base / "logs", Path(home).expanduser())
    return NodePaths(
        profile,
        Path(platformdirs.user_config_dir(APP_NAME)) / profile,
        Path(platformdirs.user_data_dir(APP_NAME)) / profile,
        Path(platformdirs.user_log_dir(APP_NAME)) / profile,
        None,
    )
