"""What the running system publishes to its views: one plain, immutable snapshot.

The service builds a :class:`Snapshot` after every step and after every user
action; views (the wall, the console, the phone) build what they show from
it in presenters and never reach into the engine or the runtime.  Everything
in it is a frozen value (the alert states, cases and plans are the runtime's
own frozen dataclasses), so a snapshot can be handed to any thread.

Freshness per feed
------------------
A feed is *stale* when nothing arrived from it for longer than its limit:
three reporting periods of the feed's cadence (``FEED_CADENCE_S``, from
docs/feeds.md), never less than two minutes.  Event-driven feeds (AI video,
warnings, cases) have no cadence: silence there is normal, so they are
never marked stale.  Buses run to the routes' timetables: while no route is
in service the bus feed is not judged, and in the morning its silence counts
from the start of service (``Service._buses_expected``).  An indicator is stale when the engine says so (its
input is older than the family's ``freshness_s``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

# docs/feeds.md, "Feed kinds": the reporting period of each periodic feed (seconds)
FEED_CADENCE_S: dict[str, float] = {
    "crowd": 60, "gate": 60, "bus": 30, "station": 60, "traffic": 60,
    "weather": 600, "facility": 900, "staff": 30,
}
EVENT_DRIVEN = ("video", "warning", "case")
STALE_PERIODS = 3
STALE_MIN_S = 120.0


def feed_limit_s(kind: str) -> float | None:
    """Seconds of silence after which a feed is stale (None: event-driven, never stale)."""
    c = FEED_CADENCE_S.get(kind)
    return None if c is None else max(STALE_PERIODS * c, STALE_MIN_S)


@dataclass(frozen=True)
class FeedFreshness:
    kind: str
    last_event: datetime | None       # newest event time accepted
    last_arrival: datetime | None     # service clock when the newest batch arrived
    limit_s: float | None
    age_s: float | None               # now - last_arrival

    @property
    def stale(self) -> bool:
        if self.limit_s is None:
            return False
        return self.age_s is None or self.age_s > self.limit_s


@dataclass(frozen=True)
class Snapshot:
    version: int
    now: datetime                                  # the service clock when built (simulated time in a simulation)
    as_of: datetime | None                         # the engine tick the values belong to
    values: Mapping[str, tuple[float | None, str]] = field(default_factory=dict)   # id -> (value, quality)
    alerts: tuple = ()                             # active AlertState, newest first
    rules: Mapping[str, Any] = field(default_factory=dict)     # rule id -> Rule (names, units, tiers)
    cases: tuple = ()                              # open cases, then the recently closed
    plans: tuple = ()                              # active PlanInstance
    plan_defs: Mapping[str, Any] = field(default_factory=dict)
    warnings: Mapping[str, Any] = field(default_factory=dict)  # signal -> WarningSignal
    staff: tuple = ()                              # StaffPosition
    feeds: Mapping[str, FeedFreshness] = field(default_factory=dict)
    health: Mapping[str, Any] = field(default_factory=dict)    # component -> {"ok": bool, "reason": str}
    trends: Mapping[str, tuple] = field(default_factory=dict)  # kpi -> ((tick ms, value), …)
    thresholds_version: int | None = None
    buses: tuple = ()                              # BusPosition, newest per vehicle
    video_events: tuple = ()                       # VideoEvent of the last 15 minutes
    incidents: Mapping[str, str] = field(default_factory=dict)  # alert id -> incident (zone/cause) it belongs to
    built_ms: int = 0                              # wall clock (epoch ms) when the service built it: the
                                                   # start of its way to every screen, through any web worker
    provisional: bool = False                      # the values' tick is ahead of the final one: events
    final_as_of: datetime | None = None            # late by up to the allowed lateness may still change
                                                   # them; final_as_of is the last final tick
    kpis: Mapping[str, float | None] = field(default_factory=dict)   # kpi -> value at as_of (trends: final)

    def value(self, indicator_id: str) -> float | None:
        v = self.values.get(indicator_id)
        return None if v is None else v[0]

    def quality(self, indicator_id: str) -> str:
        v = self.values.get(indicator_id)
        return "no_data" if v is None else v[1]

    @property
    def stale_feeds(self) -> list[str]:
        return sorted(k for k, f in self.feeds.items() if f.stale)

    def case(self, case_id: str):
        return next((c for c in self.cases if c.case_id == case_id), None)

    def alert(self, alert_id: str):
        return next((a for a in self.alerts if a.alert_id == alert_id), None)


EMPTY = Snapshot(version=0, now=datetime(1970, 1, 1, tzinfo=timezone.utc), as_of=None)
