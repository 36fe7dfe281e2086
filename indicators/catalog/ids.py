"""The one grammar of indicator ids.

An indicator id names a family, the scope it is computed over and its window::

    crowd.load_rate:zone=west_plaza@now
    video.events:zone=west_plaza,algorithm=fall@15m
    weather.temperature:area=canton_tower@now
    crowd.day_entry_rate:zone=tower_base@today
    forecast.load_rate:zone=west_plaza@+30m

* **family** - dotted lower-case words (``crowd.load_rate``);
* **scope** - one or more ``key=value`` pairs, keys from :data:`SCOPE_KEYS`
  and written in that order (so every indicator has exactly one spelling);
  values are inventory ids, vocabulary words or route numbers;
* **window** - ``now`` (the latest state), ``today`` (since local midnight),
  a trailing window ``<n>s|m|h`` (e.g. ``5m``: the last five minutes) or a
  horizon ``+<n>m|h`` (a forecast that far ahead).  A window is written with
  the largest unit that divides it (``1m``, never ``60s``).

:func:`parse` and :func:`format` are inverse (``parse(format(x)) == x``);
nothing else in the code base may split an id string.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

__all__ = ["IndicatorId", "Window", "IdError", "parse", "format", "parse_window", "format_window",
           "SCOPE_KEYS", "FAMILY_RE", "VALUE_RE"]

# Canonical order of scope keys.  Broad before narrow, entity before breakdown:
# ``zone=...,algorithm=...`` reads "in this zone, of this algorithm".
SCOPE_KEYS: tuple[str, ...] = (
    "area", "zone", "gate", "camera", "asset", "station", "stop", "route", "segment",
    "class", "algorithm", "signal", "category", "department",
)
_KEY_RANK = {k: i for i, k in enumerate(SCOPE_KEYS)}

FAMILY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
VALUE_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_WINDOW_RE = re.compile(r"^(\+?)([1-9][0-9]*)([smh])$")
_UNITS = {"s": 1, "m": 60, "h": 3600}


class IdError(ValueError):
    """An indicator id (or a part of one) is not in the grammar; the message says where."""


@dataclass(frozen=True, order=True)
class Window:
    """What time span a value covers.

    ``kind`` is ``now`` (latest state, ``seconds`` 0), ``today`` (since local
    midnight, ``seconds`` 0), ``trailing`` (the last ``seconds``) or ``ahead``
    (a forecast ``seconds`` ahead).
    """

    kind: str
    seconds: int = 0

    def __post_init__(self) -> None:
        if self.kind in ("now", "today"):
            if self.seconds != 0:
                raise IdError(f"window {self.kind!r} takes no length")
        elif self.kind in ("trailing", "ahead"):
            if not isinstance(self.seconds, int) or self.seconds <= 0:
                raise IdError(f"window {self.kind!r} needs a positive whole number of seconds, not {self.seconds!r}")
        else:
            raise IdError(f"unknown window kind {self.kind!r} (now | today | trailing | ahead)")

    def __str__(self) -> str:
        return format_window(self)


NOW = Window("now")
TODAY = Window("today")


def _span(seconds: int) -> str:
    for unit in ("h", "m", "s"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    raise AssertionError("unreachable: every whole number of seconds is divisible by 1")


def format_window(w: Window) -> str:
    if w.kind in ("now", "today"):
        return w.kind
    return ("+" if w.kind == "ahead" else "") + _span(w.seconds)


def parse_window(text: str) -> Window:
    """``now``, ``today``, ``5m``, ``+30m`` ... as a :class:`Window` (canonical spelling only)."""
    if not isinstance(text, str):
        raise IdError(f"a window is a string, not {type(text).__name__}")
    if text in ("now", "today"):
        return Window(text)
    m = _WINDOW_RE.match(text)
    if not m:
        raise IdError(f"window {text!r} is not now, today, <n>s|m|h or +<n>s|m|h")
    seconds = int(m.group(2)) * _UNITS[m.group(3)]
    w = Window("ahead" if m.group(1) else "trailing", seconds)
    if format_window(w) != text:
        raise IdError(f"window {text!r} is not canonical: write {format_window(w)!r}")
    return w


@dataclass(frozen=True, order=True)
class IndicatorId:
    """A parsed indicator id: family, ordered scope pairs and window."""

    family: str
    scope: tuple[tuple[str, str], ...]
    window: Window

    def __post_init__(self) -> None:
        _check_family(self.family)
        if not self.scope:
            raise IdError(f"{self.family}: a scope needs at least one key=value pair")
        ranks = []
        for pair in self.scope:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise IdError(f"{self.family}: scope items are (key, value) pairs, not {pair!r}")
            key, value = pair
            if key not in _KEY_RANK:
                raise IdError(f"unknown scope key {key!r} (one of {', '.join(SCOPE_KEYS)})")
            if not isinstance(value, str) or not VALUE_RE.match(value):
                raise IdError(f"scope value {value!r} of {key!r} must match {VALUE_RE.pattern}")
            ranks.append(_KEY_RANK[key])
        if len(set(ranks)) != len(ranks):
            raise IdError(f"{self.family}: a scope key appears twice")
        if ranks != sorted(ranks):
            order = ",".join(k for k, _ in sorted(self.scope, key=lambda p: _KEY_RANK[p[0]]))
            raise IdError(f"{self.family}: scope keys must be in the order {order}")
        if not isinstance(self.window, Window):
            raise IdError(f"{self.family}: window must be a Window")

    @classmethod
    def of(cls, family: str, scope: Mapping[str, str] | Iterable[tuple[str, str]], window: Window | str) -> "IndicatorId":
        """Build from a mapping in any key order (sorted into the canonical order)."""
        pairs = list(scope.items()) if isinstance(scope, Mapping) else list(scope)
        for k, _ in pairs:
            if k not in _KEY_RANK:
                raise IdError(f"unknown scope key {k!r} (one of {', '.join(SCOPE_KEYS)})")
        pairs.sort(key=lambda p: _KEY_RANK[p[0]])
        w = parse_window(window) if isinstance(window, str) else window
        return cls(family, tuple(pairs), w)

    @property
    def scope_dict(self) -> dict[str, str]:
        return dict(self.scope)

    def __str__(self) -> str:
        return format(self)


def _check_family(family: str) -> None:
    if not isinstance(family, str) or not FAMILY_RE.match(family):
        raise IdError(f"family {family!r} must be dotted lower-case words like 'crowd.load_rate'")


def format(x: IndicatorId) -> str:  # noqa: A001 - the inverse of parse
    """The canonical string of an id."""
    scope = ",".join(f"{k}={v}" for k, v in x.scope)
    return f"{x.family}:{scope}@{format_window(x.window)}"


def parse(text: str) -> IndicatorId:
    """Parse ``family:key=value[,key=value...]@window``; errors say what is wrong and where."""
    if not isinstance(text, str):
        raise IdError(f"an indicator id is a string, not {type(text).__name__}")
    if text.count("@") != 1:
        raise IdError(f"{text!r}: needs exactly one '@' before the window (e.g. ...@5m)")
    head, window = text.split("@")
    if head.count(":") != 1:
        raise IdError(f"{text!r}: needs exactly one ':' between family and scope (e.g. crowd.count:zone=west_plaza@now)")
    family, scope = head.split(":")
    _check_family(family)
    if not scope:
        raise IdError(f"{text!r}: empty scope")
    pairs = []
    for i, item in enumerate(scope.split(",")):
        if item.count("=") != 1:
            raise IdError(f"{text!r}: scope item {i} {item!r} is not key=value")
        k, v = item.split("=")
        pairs.append((k, v))
    try:
        w = parse_window(window)
    except IdError as e:
        raise IdError(f"{text!r}: {e}") from None
    try:
        return IndicatorId(family, tuple(pairs), w)
    except IdError as e:
        raise IdError(f"{text!r}: {e}") from None
