"""Every setting, declared once: type, default, bounds and a one-line description.

Pure: no files, no clocks. `core.config` reads and writes the TOML file; the CLI and the
dashboard read the declarations here to build their flags and widgets, so bounds live in one
place. Issues adding limits (the governor's) add fields here.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_origin, get_type_hints

from core.errors import SettingsError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def setting(
    default: Any,
    description: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] | None = None,
    unit: str = "",
) -> Any:
    meta = {"description": description, "lo": lo, "hi": hi, "choices": choices, "unit": unit}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """A node's settings. Frozen: change them with `Settings.with_changes`."""

    participate: bool = setting(
        False, "Lend this computer to the Grove network (off until the gardener says yes)."
    )
    listen_host: str = setting(
        "0.0.0.0", "Address the node listens on (0.0.0.0: all interfaces)."
    )
    listen_port: int = setting(
        0, "TCP port the node listens on (0: any free port).", lo=0, hi=65535
    )
    bootstrap: tuple[str, ...] = setting(
        (), "Extra bootstrap peers, as multiaddrs ending in /p2p/<peer id>."
    )
    use_default_bootstrap: bool = setting(
        True, "Also dial the Foundation bootstrap nodes listed with the app."
    )
    max_connections: int = setting(
        64, "Most peers to stay connected to at once.", lo=4, hi=1024
    )
    status_interval: float = setting(
        3.0, "Seconds between status lines of `grove node`.", lo=0.5, hi=3600, unit="s"
    )
    region: str = setting(
        "", "Region this village reports itself in (empty: unknown)."
    )
    log_level: str = setting("INFO", "How much the node writes to its log.", choices=LOG_LEVELS)

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with `changes` applied; raises SettingsError naming the field and its range."""
        merged = {**as_mapping(self), **changes}
        settings, problems = validate(merged)
        if problems:
            raise SettingsError(problems[0].message, problems[0].fix)
        return settings


@dataclass(frozen=True)
class Declaration:
    name: str
    type: type
    default: Any
    description: str
    lo: float | None
    hi: float | None
    choices: tuple[str, ...] | None
    unit: str

    def range_text(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.type is bool:
            return "true or false"
        if self.lo is not None and self.hi is not None:
            return f"{self.lo:g} to {self.hi:g}{(' ' + self.unit) if self.unit else ''}"
        return f"a {self.type.__name__}"


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    fix: str


def _declarations() -> tuple[Declaration, ...]:
    hints = get_type_hints(Settings)
    out = []
    for f in dataclasses.fields(Settings):
        tp = hints[f.name]
        if get_origin(tp) is tuple:
            tp = tuple
        out.append(Declaration(f.name, tp, f.default, **f.metadata))
    return tuple(out)


DECLARATIONS: tuple[Declaration, ...] = _declarations()
BY_NAME: Mapping[str, Declaration] = types.MappingProxyType({d.name: d for d in DECLARATIONS})


def _coerce(decl: Declaration, value: Any) -> Any:
    """The value in the declared type, or raise ValueError with a reason."""
    if decl.type is bool:
        if isinstance(value, bool):
            return value
        raise ValueError("must be true or false")
    if decl.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
    elif decl.type is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        value = float(value)
    elif decl.type is str:
        if not isinstance(value, str):
            raise ValueError("must be text")
    elif decl.type is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError("must be a list of text")
        value = tuple(value)
    if decl.lo is not None and value < decl.lo:
        raise ValueError(f"is below {decl.lo:g}")
    if decl.hi is not None and value > decl.hi:
        raise ValueError(f"is above {decl.hi:g}")
    if decl.choices is not None and value not in decl.choices:
        raise ValueError("is not a known choice")
    return value


def validate(raw: Mapping[str, Any]) -> tuple[Settings, list[Problem]]:
    """Settings from a raw mapping: each bad or unknown field is reported and the field falls
    back to its default; the good fields are kept."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in raw.items():
        decl = BY_NAME.get(key)
        if decl is None:
            problems.append(Problem(key, f"Unknown setting '{key}'.", "It was ignored."))
            continue
        try:
            values[key] = _coerce(decl, value)
        except ValueError as e:
            problems.append(
                Problem(
                    key,
                    f"Setting '{key}' = {value!r} {e}.",
                    f"Valid: {decl.range_text()}. Using the default, {decl.default!r}.",
                )
            )
    return Settings(**values), problems


def as_mapping(settings: Settings) -> dict[str, Any]:
    return {d.name: getattr(settings, d.name) for d in DECLARATIONS}


def as_toml_mapping(settings: Settings) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in as_mapping(settings).items()}
