"""The scenic area's local time, in one place.

Guangzhou keeps China Standard Time (UTC+8, no daylight saving).  Times are
UTC inside the engine, the stores and the feeds; they become local only
where a person reads them (a screen, a message, a report) or where a rule
speaks of local hours (calendars, opening hours, "today").
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

TZ_NAME = "Asia/Shanghai"
LOCAL = ZoneInfo(TZ_NAME)


def to_local(t: datetime) -> datetime:
    """``t`` (timezone-aware) in local time."""
    if t.tzinfo is None:
        raise ValueError("a naive datetime has no known zone; pass an aware one (UTC inside the system)")
    return t.astimezone(LOCAL)


def fmt_local(t: datetime | None, *, date: bool = True, seconds: bool = True, empty: str = "—") -> str:
    """``2026-10-01 19:22:05`` (or ``19:22`` …) in local time; ``empty`` for None."""
    if t is None:
        return empty
    f = ("%Y-%m-%d " if date else "") + ("%H:%M:%S" if seconds else "%H:%M")
    return to_local(t).strftime(f)


def utc(t: datetime) -> datetime:
    """``t`` as UTC (aware)."""
    if t.tzinfo is None:
        raise ValueError("a naive datetime has no known zone; pass an aware one")
    return t.astimezone(timezone.utc)
