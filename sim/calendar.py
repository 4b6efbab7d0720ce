"""Simulated time: the one place that knows a day has 1,440 minutes.

A run's clock counts simulated minutes from the start of day 1 (minute 0 = day 1,
00:00). Everything that needs a day, an hour or a minute of the day asks here.
"""

from __future__ import annotations

SECONDS_PER_MINUTE = 60
MINUTES_PER_HOUR = 60
HOURS_PER_DAY = 24
MINUTES_PER_DAY = MINUTES_PER_HOUR * HOURS_PER_DAY


def day_of(sim_minute: int) -> int:
    """1-based simulated day of a minute."""
    return sim_minute // MINUTES_PER_DAY + 1


def minute_of_day(sim_minute: int) -> int:
    """Minutes since midnight of the minute's day (0..1439)."""
    return sim_minute % MINUTES_PER_DAY


def hour_of(sim_minute: int) -> int:
    """Hour of the day (0..23) of a minute."""
    return minute_of_day(sim_minute) // MINUTES_PER_HOUR


def minute_of_tick(start_minute: int, tick: int, step_minutes: int) -> int:
    """The simulated minute at which a tick starts."""
    return start_minute + tick * step_minutes


def days_to_ticks(days: float, step_minutes: int) -> int:
    """Ticks in ``days`` simulated days (at least one)."""
    return max(1, round(days * MINUTES_PER_DAY / step_minutes))


def ticks_to_days(ticks: int, step_minutes: int) -> float:
    """Simulated days covered by ``ticks`` ticks."""
    return ticks * step_minutes / MINUTES_PER_DAY


def clock_text(sim_minute: int) -> str:
    """``day 2 07:45``: a minute as people read it."""
    return f"day {day_of(sim_minute)} {hour_of(sim_minute):02d}:{sim_minute % MINUTES_PER_HOUR:02d}"


def minute_at(day: int, hhmm: str = "00:00") -> int:
    """The simulated minute of ``HH:MM`` on a 1-based day (``minute_at(2, "07:45")`` = 1905)."""
    if day < 1:
        raise ValueError(f"days count from 1, not {day}")
    hours, _, minutes = hhmm.partition(":")
    hour, minute = int(hours), int(minutes)
    if not (0 <= hour < HOURS_PER_DAY and 0 <= minute < MINUTES_PER_HOUR):
        raise ValueError(f"not a time of day: {hhmm!r}")
    return (day - 1) * MINUTES_PER_DAY + hour * MINUTES_PER_HOUR + minute
