"""The live state the views show, and how it reaches the browser.

The engine thread publishes what changed (zone load and tier, headline
indicators, alert counts, the data-as-of time) into a :class:`LiveHub`.
Each browser connection runs one persistent WebSocket callback that waits
for a newer version of the hub and pushes it with ``set_props`` — the
server pushes, the page never polls.  Only changed keys travel.
"""
from __future__ import annotations

import asyncio
import copy
import threading
from typing import Any


class LiveHub:
    """Versioned snapshot of the live view state; thread-safe, async-awaitable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._state: dict[str, Any] = {}
        self._changed_at: dict[str, int] = {}
        self._loops: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def version(self) -> int:
        return self._version

    def publish(self, patch: dict[str, Any]) -> int:
        """Merge a patch (top-level key -> value; dict values are merged one level down)."""
        with self._lock:
            for key, value in patch.items():
                if isinstance(value, dict) and isinstance(self._state.get(key), dict):
                    merged = dict(self._state[key])
                    merged.update(value)
                    value = merged
                if self._state.get(key) != value:
                    self._state[key] = value
                    self._version += 1
                    self._changed_at[key] = self._version
            version = self._version
            waiters = list(self._loops)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        return version

    def since(self, version: int) -> tuple[int, dict[str, Any]]:
        """(current version, the keys changed after ``version``)."""
        with self._lock:
            changed = {k: copy.deepcopy(self._state[k]) for k, v in self._changed_at.items() if v > version}
            return self._version, changed

    async def wait_newer(self, version: int, timeout: float) -> tuple[int, dict[str, Any]]:
        """Wait until the hub is newer than ``version`` (or the timeout), then return ``since``."""
        if self._version > version:
            return self.since(version)
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        with self._lock:
            self._loops.append(entry)
        try:
            if self._version <= version:
                try:
                    await asyncio.wait_for(event.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
            return self.since(version)
        finally:
            with self._lock:
                self._loops.remove(entry)
