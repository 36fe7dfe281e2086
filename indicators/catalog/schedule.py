"""Operating schedules: when the assets of a facility class are expected to work.

A lamp by day or a tower lift after closing time is *not expected to work*:
a reading of "off" then is neither a fault nor a sign of health, so the
facility families leave such an asset out of what they judge (docs/catalog.md,
"Facilities").  A class declares one schedule, and may declare another for
the assets of a particular zone (the metro's lifts keep the metro's hours,
not the tower's).  Two kinds, in local time at the scenic area's position:

* ``hours``: every day from ``hours[0]`` to ``hours[1]`` (``"24:00"`` is
  midnight at the end of the day; a window that ends before it starts runs
  past midnight);
* ``night``: from ``after_sunset_min`` after sunset to ``before_sunrise_min``
  before the next sunrise, with the sun times of
  :func:`indicators.localtime.sun_times` - computed for each day, not a table.

No schedule means always expected.  :meth:`Schedule.window` answers for one
instant whether the assets are expected, since when, and until when that
holds, so a caller asks again only when it changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from indicators.localtime import LOCAL, sun_times

__all__ = ["Schedule", "SCHEDULE_KINDS"]

SCHEDULE_KINDS = ("hours", "night")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DAY = timedelta(days=1)


def _ms(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class Schedule:
    """One operating schedule (see the module docstring); minutes are local."""

    kind: str
    start_min: int = 0                    # hours: opening time, minutes after local midnight
    end_min: int = 1440                   # hours: closing time (may be <= start: past midnight)
    after_sunset_min: float = 0.0         # night: expected from sunset + this ...
    before_sunrise_min: float = 0.0       # ... to the next sunrise - this
    source: str = ""

    def opening(self, day: date, lat: float, lon: float) -> tuple[int, int]:
        """[open, close) in epoch ms of the window that opens on local day ``day``."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=LOCAL)
        if self.kind == "hours":
            end = self.end_min if self.end_min > self.start_min else self.end_min + 1440
            return (_ms(midnight + timedelta(minutes=self.start_min)),
                    _ms(midnight + timedelta(minutes=end)))
        nxt = day + _DAY
        _, sset = sun_times(day.timetuple().tm_yday, lat, lon)
        rise, _ = sun_times(nxt.timetuple().tm_yday, lat, lon)
        a = midnight + timedelta(minutes=float(sset) + self.after_sunset_min)
        b = datetime(nxt.year, nxt.month, nxt.day, tzinfo=LOCAL) + timedelta(
            minutes=float(rise) - self.before_sunrise_min)
        return _ms(a), _ms(b)

    def window(self, t_ms: int, lat: float, lon: float) -> tuple[bool, int, int]:
        """(expected at ``t_ms``, since when, until when) in epoch ms.

        Expected: since = the opening of the current window, until = its close.
        Not expected: since = the close of the last window, until = the next opening.
        """
        today = datetime.fromtimestamp(t_ms / 1000, LOCAL).date()
        prev_close = None
        for day in (today - _DAY, today, today + _DAY):     # windows never span more than a day
            a, b = self.opening(day, lat, lon)
            if a <= t_ms < b:
                return True, a, b
            if t_ms < a:
                return False, prev_close if prev_close is not None else a - 86_400_000, a
            prev_close = b
        raise AssertionError("a schedule window opens every day")      # unreachable

    def expected_at(self, t_ms: int, lat: float, lon: float) -> bool:
        return self.window(t_ms, lat, lon)[0]
