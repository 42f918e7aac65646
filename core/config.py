"""Reading and writing `settings.toml`: atomically, and never losing a gardener's file.

A file that does not parse, or holds a bad field, is copied aside as
`settings.toml.bad-<time>` before anything is written over it; the node starts on defaults
for what was bad, and the messages name each bad field.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from core.errors import SettingsError
from core.settings_schema import Problem, Settings, as_toml_mapping, validate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    problems: tuple[Problem, ...]
    kept_aside: Path | None  # where a bad file was preserved

    def messages(self) -> list[str]:
        out = [f"{p.message} {p.fix}".strip() for p in self.problems]
        if self.kept_aside is not None:
            out.append(f"Your file was kept as {self.kept_aside}.")
        return out


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` so that a crash leaves either the old or the new file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _keep_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.bad-{stamp}-{n}")
        n += 1
    os.replace(path, aside)
    return aside


def load_settings(path: Path) -> LoadedSettings:
    """Settings from `path`; a missing file gives defaults. Never raises on a bad file."""
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        return LoadedSettings(Settings(), (), None)
    except OSError as e:
        problem = Problem("", f"The settings file {path} cannot be read ({e.strerror}).",
                          "Using defaults.")
        return LoadedSettings(Settings(), (problem,), None)
    try:
        raw = tomllib.loads(raw_bytes.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        problem = Problem("", f"The settings file is not valid TOML ({e}).", "Using defaults.")
        kept = _keep_aside(path)
        save_settings(path, Settings())
        return LoadedSettings(Settings(), (problem,), kept)
    settings, problems = validate(raw)
    if not problems:
        return LoadedSettings(settings, (), None)
    kept = _keep_aside(path)
    save_settings(path, settings)
    for p in problems:
        log.warning("settings: %s %s", p.message, p.fix)
    return LoadedSettings(settings, tuple(problems), kept)


def save_settings(path: Path, settings: Settings) -> None:
    try:
        atomic_write(path, tomli_w.dumps(as_toml_mapping(settings)).encode())
    except OSError as e:
        raise SettingsError(
            f"Settings could not be saved to {path} ({e.strerror}).",
            "Check that the folder is writable and the disk is not full.",
        ) from e
