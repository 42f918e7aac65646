"""Every setting, declared once: type, default, bounds and a one-line description.

Pure: no files, no clocks. `core.config` reads and writes the TOML file; the CLI and the
dashboard read the declarations here to build their flags and widgets, so bounds live in one
place. Issues adding limits (the governor's) add fields here.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
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
    mdns: bool = setting(
        True, "Find villages on this local network (mDNS); off when listening on loopback."
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
    village_name: str = setting(
        "", "A name for this village that other gardeners see beside its own two-word name "
        "(at most 32 letters, digits and spaces; empty: only the two-word name)."
    )
    notifications: bool = setting(
        True, "Desktop notifications when Grove pauses by a rule, needs a relay or needs you "
        "(at most one a quarter-hour per kind).")
    log_level: str = setting("INFO", "How much the node writes to its log.", choices=LOG_LEVELS)
    reachability: str = setting(
        "auto", "Whether other villages can dial this one: auto (ask peers with AutoNAT), "
        "private (always use relays, e.g. behind carrier-grade NAT) or public.",
        choices=("auto", "private", "public"))

    # -- village health telemetry (averaged network-wide, Moshpit) ----------------------------
    telemetry_period_s: int = setting(
        300, "How often village health is averaged with the network.", lo=5, hi=3600,
        unit="s")
    telemetry_epsilon: float = setting(
        0.0, "Local differential privacy for this village's health (Gaussian noise; "
        "0: off, smaller: more private and less accurate).", lo=0.0, hi=100.0)

    # -- collaborative training (opt-in per project; runs only within the limits) -------------
    training_projects: tuple[str, ...] = setting(
        (), "Training projects this village takes part in (see `grove train`).")
    training_rule: str = setting(
        "", "How this village aggregates its group's updates (empty: the project's rule).",
        choices=("", "mean", "median", "trimmed_mean", "krum", "multi_krum", "bulyan",
                 "signsgd_mv", "centered_clip", "geometric_median"))
    training_period_s: float = setting(
        0.0, "Seconds between collaboration steps (0: the project's own period).", lo=0.0,
        hi=3600.0, unit="s")

    # -- SWARM: serving spans of a model's blocks (`grove swarm serve`) -----------------------
    swarm_serve: bool = setting(
        False, "Serve blocks of a SWARM model to other villages (within the limits).")
    swarm_model: str = setting("tiny-lm", "The SWARM model this village serves blocks of.",
                               choices=("tiny-lm", "small-lm"))
    swarm_max_blocks: int = setting(
        0, "Most blocks this village serves (0: as many as its memory budget fits).",
        lo=0, hi=4096)
    swarm_lr: float = setting(
        1e-3, "Learning rate of the local optimizer of the blocks this village serves.",
        lo=0.0, hi=1.0)
    swarm_train: bool = setting(
        False, "Train the SWARM model: drive this village's own data through the villages "
        "that serve its blocks (within the limits).")
    swarm_average_period_s: float = setting(
        20.0, "Seconds between a stage's averages: with global steps, between the optimizer "
        "steps every server of a stage takes together; with local steps, between averages "
        "of each block's parameters.", lo=2.0, hi=3600.0, unit="s")
    swarm_update: str = setting(
        "global", "How a served block learns: global (the SWARM paper's: the gradients of "
        "each period's micro-batches are averaged across the stage and every server of it "
        "takes the same step, so the swarm trains one model) or local (each server's "
        "optimizer steps on the micro-batches it computes and the stage's copies are "
        "averaged every period; they drift apart between averages). Every village of a "
        "project must use the same.", choices=("global", "local"))

    swarm_stake: float = setting(
        0.0, "Credits this village stakes to serve SWARM work above the basic service level "
        "(checked, assured): a failed check takes part of it. Backed by the verified credit "
        "this village earned; 0: serve basic work only.", lo=0.0, hi=1e9, unit="credits")

    # -- personas' conversations with other villages ----------------------------------------
    persona_endpoint_url: str = setting(
        "http://127.0.0.1:8080", "The chat-completions endpoint of the model server the "
        "gardener runs (personas with the openai-compatible backend).")
    persona_endpoint_model: str = setting(
        "local", "The model name to ask that endpoint for.")

    # -- the update check (off until the gardener turns it on) --------------------------------
    update_check: bool = setting(
        False, "Check once a day whether a newer signed release exists (never installs).")
    update_url: str = setting(
        "", "The signed release manifest to check (https://…/manifest.json).")

    # -- relay mode (`grove relay`: a public relay, DHT server and bootstrap node) ------------
    relay_enabled: bool = setting(False, "Serve as a circuit relay for villages behind NAT.")
    relay_max_reservations: int = setting(
        128, "Most villages that may hold a reservation on this relay.", lo=1, hi=100_000
    )
    relay_max_circuits: int = setting(
        64, "Most relayed connections at once.", lo=1, hi=100_000
    )
    relay_circuit_mb: int = setting(
        256, "Most data one relayed connection may carry.", lo=1, hi=1_000_000, unit="MB"
    )
    relay_circuit_minutes: int = setting(
        60, "Longest a relayed connection may last.", lo=1, hi=24 * 60, unit="min"
    )

    # -- limits: what the gardener lends (enforced by core.governor) --------------------------
    cpu_share: int = setting(
        50, "Share of the whole machine's CPU the network may use.", lo=5, hi=100, unit="%"
    )
    max_threads: int = setting(
        0, "Most compute threads at once (0: decided from the CPU share).", lo=0, hi=256
    )
    ram_cap_mb: int = setting(
        4096, "Most memory the network's work may hold.", lo=256, hi=1_048_576, unit="MB"
    )
    vram_cap_mb: int = setting(
        0, "Most GPU memory per GPU the network may use (0: all of it).", lo=0, hi=1_048_576,
        unit="MB",
    )
    allowed_gpus: tuple[str, ...] = setting(
        (), "GPUs the network may use, by index (empty: all)."
    )
    use_gpu: bool = setting(True, "Let the network use GPUs at all.")
    upload_kbps: int = setting(
        0, "Upload cap for all of the village's traffic (0: no cap).", lo=0, hi=10_000_000,
        unit="kB/s"
    )
    download_kbps: int = setting(
        0, "Download cap for all of the village's traffic (0: no cap).", lo=0,
        hi=10_000_000, unit="kB/s"
    )
    limit_lan: bool = setting(
        False, "Cap traffic with villages on this local network too (off: it never crosses "
        "your internet connection, so it is not capped)."
    )
    bandwidth_schedule: str = setting(
        "", "Weekly hours when the scheduled caps replace the caps above, e.g. "
        "'mon-fri 09:00-18:00' (empty: never)."
    )
    scheduled_upload_kbps: int = setting(
        0, "Upload cap during the bandwidth schedule's hours (0: no cap).", lo=0,
        hi=10_000_000, unit="kB/s"
    )
    scheduled_download_kbps: int = setting(
        0, "Download cap during the bandwidth schedule's hours (0: no cap).", lo=0,
        hi=10_000_000, unit="kB/s"
    )
    idle_only: bool = setting(False, "Compute only while the computer is not being used.")
    idle_minutes: int = setting(
        5, "Minutes without keyboard or mouse input before idle-only compute starts.",
        lo=1, hi=240, unit="min",
    )
    pause_on_battery: bool = setting(True, "Pause while the computer runs on battery.")
    pause_for_programs: tuple[str, ...] = setting(
        (), "Pause while any of these programs runs, by program name (e.g. steam, zoom; "
        "at most 32)."
    )
    pause_when_fullscreen: bool = setting(
        False, "Pause while a program fills the screen (a game, a film, a presentation)."
    )
    pause_on_metered: bool = setting(
        False, "Pause while the network connection is metered (a phone's hotspot, a capped "
        "plan), as NetworkManager reports it."
    )
    battery_resume_percent: int = setting(
        0, "On battery, resume above this charge (0: only when plugged in).", lo=0, hi=100,
        unit="%",
    )
    schedule: str = setting(
        "", "Weekly hours the network may compute, e.g. 'mon-fri 18:00-08:00; sat-sun' "
        "(empty: any time)."
    )
    gpu_temp_limit_c: int = setting(
        83, "Pause GPU work when a GPU is hotter than this.", lo=50, hi=100, unit="°C"
    )
    gpu_temp_hysteresis_c: int = setting(
        5, "Resume GPU work once it has cooled this far below the limit.", lo=1, hi=30,
        unit="°C",
    )

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with `changes` applied; raises SettingsError naming the field and its range."""
        merged = {**as_mapping(self), **changes}
        settings, problems = validate(merged)
        if problems:
            p = problems[0]
            raise SettingsError(p.message, p.valid or p.fix)
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
    fix: str  # what happens instead (for a file: the default is used)
    valid: str = ""  # the valid range, in words


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
    check = CHECKS.get(decl.name)
    if check is not None:
        check(value)
    return value


def _check_schedule(value: str) -> None:
    from core.schedule import parse_schedule

    parse_schedule(value)  # ValueError names what is wrong


def _check_gpus(value: tuple[str, ...]) -> None:
    for v in value:
        if not v.isdigit():
            raise ValueError(f"has '{v}', which is not a GPU index")


def _check_programs(value: tuple[str, ...]) -> None:
    if len(value) > 32:
        raise ValueError(f"names {len(value)} programs, at most 32")
    for v in value:
        if not 0 < len(v) <= 64 or "/" in v or "\\" in v or not v.isprintable():
            raise ValueError(f"has '{v[:64]}', which is not a program name")


def _check_projects(value: tuple[str, ...]) -> None:
    import re

    for v in value:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", v):
            raise ValueError(f"has '{v[:40]}', which is not a project name")


def _check_update_url(value: str) -> None:
    from core.release.urls import check_url

    if value:
        check_url(value)


CHECKS: dict[str, Callable[[Any], None]] = {"update_url": _check_update_url,
                                             "schedule": _check_schedule,
                                             "bandwidth_schedule": _check_schedule,
                                             "allowed_gpus": _check_gpus,
                                             "training_projects": _check_projects,
                                             "pause_for_programs": _check_programs}


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
                    f"Valid: {decl.range_text()}.",
                )
            )
    return Settings(**values), problems


def as_mapping(settings: Settings) -> dict[str, Any]:
    return {d.name: getattr(settings, d.name) for d in DECLARATIONS}


def as_toml_mapping(settings: Settings) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in as_mapping(settings).items()}


def parse_assignment(text: str, allowed: tuple[str, ...] | None = None,
                     kind: str = "setting") -> tuple[str, Any]:
    """`NAME=VALUE` typed by the setting's declaration; SettingsError with the valid range."""
    if "=" not in text:
        raise SettingsError(f"'{text}' is not NAME=VALUE.", "For example: cpu_share=30.")
    name, raw = (p.strip() for p in text.split("=", 1))
    decl = BY_NAME.get(name)
    if decl is None or (allowed is not None and name not in allowed):
        names = allowed if allowed is not None else tuple(BY_NAME)
        raise SettingsError(f"'{name}' is not a {kind}.", f"{kind.capitalize()}s: "
                            + ", ".join(names))
    value: Any = raw
    bad = SettingsError(f"'{raw}' is not valid for {name}.", f"Valid: {decl.range_text()}.")
    if decl.type is bool:
        if raw.lower() not in ("true", "false", "on", "off", "yes", "no"):
            raise bad
        return name, raw.lower() in ("true", "on", "yes")
    try:
        if decl.type is int:
            value = int(raw)
        elif decl.type is float:
            value = float(raw)
        elif decl.type is tuple:
            value = tuple(v.strip() for v in raw.split(",") if v.strip())
    except ValueError:
        raise bad from None
    try:
        value = _coerce(decl, value)  # bounds and choices, with the valid range
    except (ValueError, SettingsError):
        raise bad from None
    return name, value
