from __future__ import annotations

import pytest

from core.schedule import parse_schedule

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def at(h: int, m: int = 0) -> int:
    return h * 60 + m


def test_empty_is_always() -> None:
    s = parse_schedule("")
    assert s.always and s.allows(SUN, at(3))


def test_evenings_across_midnight() -> None:
    s = parse_schedule("mon-fri 18:00-08:00")
    assert s.allows(MON, at(18)) and s.allows(MON, at(23, 59))
    assert s.allows(TUE, at(7, 59)) and not s.allows(TUE, at(8))
    assert not s.allows(MON, at(17, 59)) and not s.allows(MON, at(3))  # Sunday night: no
    assert s.allows(SAT, at(7)) and not s.allows(SAT, at(9))  # Friday's night runs into Sat
    assert not s.allows(SUN, at(20))


def test_across_the_week_end() -> None:
    s = parse_schedule("sun 22:00-02:00")
    assert s.allows(SUN, at(23)) and s.allows(MON, at(1, 59)) and not s.allows(MON, at(2))
    wrap = parse_schedule("fri-mon")
    assert [wrap.allows(d, at(12)) for d in range(7)] == [True, False, False, False, True,
                                                         True, True]


def test_whole_days_lists_and_daily() -> None:
    s = parse_schedule("sat,sun; wed 12:00-13:00")
    assert s.allows(SAT, 0) and s.allows(SUN, at(23, 59)) and not s.allows(MON, at(12))
    assert s.allows(WED, at(12, 30)) and not s.allows(WED, at(13))
    assert parse_schedule("daily 00:00-24:00").allows(THU, at(23, 59))


@pytest.mark.parametrize(("text", "words"), [
    ("someday", "not a day"),
    ("mon-xyz", "not a day range"),
    ("mon 25:00-26:00", "not a time"),
    ("mon 9-17", "not a time"),
    ("mon 09:00", "HH:MM-HH:MM"),
    ("mon 09:00-10:00 extra", "DAYS or DAYS HH:MM-HH:MM"),
])
def test_bad_schedules_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_schedule(text)


def test_schedule_setting_is_validated() -> None:
    from core.errors import SettingsError
    from core.settings_schema import Settings

    with pytest.raises(SettingsError, match="schedule"):
        Settings().with_changes(schedule="mon 9-5")
