"""How the published snapshot reaches the browsers.

The service publishes a :class:`~indicators.snapshot.Snapshot` into a
:class:`SnapshotHub` after every step and every action.  Each browser
connection runs one persistent WebSocket callback that waits for a newer
snapshot and pushes the *changed top-level keys* of its view model with
``set_props`` — the server pushes, the page never polls.  View models are
built once per snapshot version (:class:`ViewCache`), however many screens
are connected.
"""
from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from typing import Any, Callable

from indicators.snapshot import EMPTY, Snapshot


class SnapshotHub:
    """The latest snapshot; thread-safe to publish, awaitable to read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snap: Snapshot = EMPTY
        self._seq = 0
        self._loops: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.skipped = 0     # pushes not queued because that screen had not taken the previous ones yet

    @property
    def version(self) -> int:
        return self._seq

    @property
    def snapshot(self) -> Snapshot:
        return self._snap

    def publish(self, snap: Snapshot) -> int:
        with self._lock:
            self._snap = snap
            self._seq += 1
            seq = self._seq
            waiters = list(self._loops)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:          # the loop of a closed connection
                pass
        return seq

    async def wait_newer(self, seq: int, timeout: float) -> tuple[int, Snapshot]:
        """Wait until the hub is newer than ``seq`` (or the timeout); (current seq, snapshot)."""
        if self._seq > seq:
            return self._seq, self._snap
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        with self._lock:
            self._loops.append(entry)
        try:
            if self._seq <= seq:
                try:
                    await asyncio.wait_for(event.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
            return self._seq, self._snap
        finally:
            with self._lock:
                self._loops.remove(entry)


class ViewCache:
    """View models by (view name, snapshot version): built once, shared by every screen."""

    def __init__(self, builders: dict[str, Callable[[Snapshot], dict[str, Any]]], keep: int = 8):
        self.builders = builders
        self.keep = keep
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()

    def get(self, view: str, snap: Snapshot) -> dict[str, Any]:
        key = (view, snap.version)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        model = self.builders[view](snap)
        with self._lock:
            self._cache[key] = model
            while len(self._cache) > self.keep:
                self._cache.popitem(last=False)
        return model
