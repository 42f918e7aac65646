"""`NodeConfig`: everything a node needs to start (paths, key, settings, overrides)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from core.config import load_settings
from core.identity import KeyStoreInfo, VillageKey, load_or_create_key
from core.paths import NodePaths, node_paths
from core.settings_schema import Settings

# an extra service for tests: given the node, returns the coroutine function to supervise
ServiceFactory = Callable[[Any], Callable[[], Awaitable[None]]]


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node needs to start. Build with `NodeConfig.load`."""

    paths: NodePaths
    key: VillageKey
    key_info: KeyStoreInfo
    file_settings: Settings  # what settings.toml holds
    overrides: Mapping[str, Any] = field(default_factory=dict)  # this run only (CLI flags)
    notices: tuple[str, ...] = ()
    extra_services: Mapping[str, ServiceFactory] = field(default_factory=dict)
    seed: int | None = None  # for the node's RNG; None = from the OS

    @property
    def settings(self) -> Settings:
        return self.file_settings.with_changes(**self.overrides)

    def reloaded(self) -> NodeConfig:
        """This config with settings.toml read again (for a restart)."""
        loaded = load_settings(self.paths.settings_file)
        return replace(self, file_settings=loaded.settings, notices=tuple(loaded.messages()))

    @classmethod
    def load(cls, profile: str = "default", *, overrides: Mapping[str, Any] | None = None,
             env: dict[str, str] | None = None, **kw: Any) -> NodeConfig:
        """Paths, settings (never failing on a bad file) and the village key (may raise
        IdentityError). Overrides are validated (SettingsError names the field)."""
        paths = node_paths(profile, env).ensure()
        loaded = load_settings(paths.settings_file)
        key, key_info = load_or_create_key(paths, env)
        overrides = dict(overrides or {})
        loaded.settings.with_changes(**overrides)  # validate now, with a clear error
        return cls(paths, key, key_info, loaded.settings, overrides,
                   tuple(loaded.messages()), **kw)
