"""Per-client request limits on the server's write routes.

One client that sends too fast - a runaway script, a stuck retry loop, a
phone re-sending its queue, an attacker with a valid account - must not take
the server from everyone else.  Every write route has a token bucket per
client: ``burst`` requests at once, refilled at ``rate`` per second; past it
the request is answered 429 with ``Retry-After`` (HTTP) or the socket is
closed with 1013 "try again later" (a WebSocket callback message), and the
refusal is audited once per client and minute (not once per request: a flood
must not flood the audit trail too).

The client is the account when there is a session (a person on two screens
shares one budget), else the network address plus a digest of the bearer
token (an ingest gateway), so one gateway behind a shared address does not
starve another.

Limits (requests per second sustained / burst) are sized from what the pages
and feeds do: a console sends a callback per click and a few per push, the
wall none but its reconnects; a feed gateway posts a batch per second or
less; a patrol phone a photo per report.  ``SCENIC_TWIN_RATE_<CLASS>`` =
``"rate/burst"`` (e.g. ``SCENIC_TWIN_RATE_INGEST=200/800``) changes one.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass

__all__ = ["Limit", "RateLimiter", "DEFAULT_LIMITS", "limits_from_env"]


@dataclass(frozen=True)
class Limit:
    rate: float      # requests per second, sustained
    burst: int       # requests at once

    def __post_init__(self):
        if not (self.rate > 0 and self.burst >= 1):
            raise ValueError("a request limit needs a rate > 0 and a burst >= 1")


DEFAULT_LIMITS: dict[str, Limit] = {
    "callback": Limit(20.0, 80),     # Dash callbacks over HTTP and WebSocket messages, per account
    "ingest": Limit(50.0, 200),      # POST /ingest/*, per address + token
    "photo": Limit(0.5, 6),          # POST /patrol/photo, per account
    "login": Limit(1.0, 20),         # POST /login, per address (the store also locks an account out)
}


def limits_from_env(env=os.environ) -> dict[str, Limit]:
    """The default limits with ``SCENIC_TWIN_RATE_<CLASS>=rate/burst`` applied; a bad value is
    an error naming the variable and what to write."""
    out = dict(DEFAULT_LIMITS)
    for cls in DEFAULT_LIMITS:
        name = f"SCENIC_TWIN_RATE_{cls.upper()}"
        v = env.get(name)
        if not v:
            continue
        try:
            rate, burst = v.split("/")
            out[cls] = Limit(float(rate), int(burst))
        except ValueError:
            raise ValueError(f"{name}={v!r}: write requests per second and burst as RATE/BURST, "
                             f"e.g. {DEFAULT_LIMITS[cls].rate:g}/{DEFAULT_LIMITS[cls].burst}") from None
    return out


def client_key(username: str | None, address: str, authorization: str | None = None) -> str:
    if username:
        return "user:" + username
    token = hashlib.sha256(authorization.encode("utf-8", "replace")).hexdigest()[:12] if authorization else "-"
    return f"addr:{address}:{token}"


class RateLimiter:
    """Token buckets per (class, client).  ``take`` returns 0 when the request may go, else the
    seconds until it could.  Thread-safe; memory bounded (idle full buckets are forgotten)."""

    MAX_CLIENTS = 20_000

    def __init__(self, limits: dict[str, Limit] | None = None, clock=time.monotonic):
        self.limits = dict(limits or DEFAULT_LIMITS)
        self.clock = clock
        self._buckets: dict[tuple[str, str], list[float]] = {}     # -> [tokens, last refill]
        self._audited: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.refused: dict[str, int] = {c: 0 for c in self.limits}

    def take(self, cls: str, client: str) -> float:
        lim = self.limits[cls]
        now = self.clock()
        with self._lock:
            b = self._buckets.get((cls, client))
            if b is None:
                if len(self._buckets) >= self.MAX_CLIENTS:
                    self._forget_idle(now)
                b = self._buckets[(cls, client)] = [float(lim.burst), now]
            else:
                b[0] = min(float(lim.burst), b[0] + (now - b[1]) * lim.rate)
                b[1] = now
            if b[0] >= 1.0:
                b[0] -= 1.0
                return 0.0
            self.refused[cls] = self.refused.get(cls, 0) + 1
            return (1.0 - b[0]) / lim.rate

    def should_audit(self, cls: str, client: str, every_s: float = 60.0) -> bool:
        """True at most once per ``every_s`` per client and class."""
        now = self.clock()
        with self._lock:
            last = self._audited.get((cls, client))
            if last is not None and now - last < every_s:
                return False
            if len(self._audited) >= self.MAX_CLIENTS:
                self._audited.clear()
            self._audited[(cls, client)] = now
            return True

    def _forget_idle(self, now: float) -> None:
        full = [k for k, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.limits[k[0]].rate >= self.limits[k[0]].burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.MAX_CLIENTS:          # all busy: drop the oldest half
            for k in sorted(self._buckets, key=lambda k: self._buckets[k][1])[: self.MAX_CLIENTS // 2]:
                del self._buckets[k]
