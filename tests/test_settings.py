from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from core.config import atomic_write, load_settings, save_settings
from core.errors import SettingsError
from core.settings_schema import BY_NAME, DECLARATIONS, Settings, validate


def test_every_setting_is_declared_with_a_description_and_default() -> None:
    assert {d.name for d in DECLARATIONS} == set(Settings.__dataclass_fields__)
    for d in DECLARATIONS:
        assert d.description.endswith("."), d.name
        validate({d.name: d.default})  # defaults are valid
        assert not validate({d.name: d.default})[1]


@pytest.mark.parametrize(("field", "value", "expect"), [
    ("listen_port", -1, "below 0"),
    ("listen_port", 70000, "above 65535"),
    ("listen_port", "80", "whole number"),
    ("listen_port", True, "whole number"),
    ("participate", "yes", "true or false"),
    ("log_level", "LOUD", "not a known choice"),
    ("bootstrap", [1, 2], "list of text"),
    ("status_interval", 0.0, "below 0.5"),
])
def test_bad_values_are_named_with_their_range(field: str, value: object, expect: str) -> None:
    settings, problems = validate({field: value})
    assert getattr(settings, field) == BY_NAME[field].default
    assert len(problems) == 1
    assert problems[0].field == field
    assert field in problems[0].message and expect in problems[0].message
    assert "Valid:" in problems[0].fix


def test_good_fields_survive_next_to_a_bad_one() -> None:
    settings, problems = validate({"listen_port": 4001, "participate": "maybe"})
    assert settings.listen_port == 4001
    assert settings.participate is False
    assert [p.field for p in problems] == ["participate"]


def test_with_changes_refuses_out_of_range_with_the_range() -> None:
    with pytest.raises(SettingsError, match=r"listen_port.*0 to 65535"):
        Settings().with_changes(listen_port=99999)
    assert Settings().with_changes(listen_port=5).listen_port == 5


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path / "settings.toml")
    assert loaded.settings == Settings() and not loaded.problems and loaded.kept_aside is None


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    s = Settings().with_changes(participate=True, bootstrap=("/ip4/1.2.3.4/tcp/1/p2p/x",))
    save_settings(path, s)
    assert load_settings(path).settings == s
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_corrupt_file_starts_on_defaults_and_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    garbage = b"participate = tru\x00e\n[[[\n"
    path.write_bytes(garbage)
    loaded = load_settings(path)
    assert loaded.settings == Settings()
    assert loaded.kept_aside is not None and loaded.kept_aside.read_bytes() == garbage
    assert loaded.kept_aside.name.startswith("settings.toml.bad-")
    assert "not valid TOML" in " ".join(loaded.messages())
    # the live file is valid again, and the bad one was never overwritten
    assert tomllib.loads(path.read_text()) is not None


def test_out_of_range_field_is_named_and_file_preserved(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    original = "listen_port = 123456\nparticipate = true\n"
    path.write_text(original)
    loaded = load_settings(path)
    assert loaded.settings.listen_port == 0  # default for the bad field
    assert loaded.settings.participate is True  # the good field kept
    assert any("listen_port" in m for m in loaded.messages())
    assert loaded.kept_aside is not None and loaded.kept_aside.read_text() == original
    # a second corrupt load does not overwrite the first preserved copy
    path.write_text("listen_port = -5\n")
    second = load_settings(path)
    assert second.kept_aside != loaded.kept_aside
    assert loaded.kept_aside.read_text() == original


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f"
    atomic_write(path, b"old")

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temp file left behind


def test_save_failure_is_a_plain_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          ) -> None:
    def failing_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(SettingsError, match="could not be saved.*disk is not full"):
        save_settings(tmp_path / "settings.toml", Settings())
