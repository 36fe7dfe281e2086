"""Raw feed records from IoT gateways, through the bus, into the front's ingestor.

A gateway in the field (a lamp controller, a manhole-cover sensor hub) speaks MQTT, not HTTP.
NATS has an MQTT listener: an MQTT topic ``scenic/<area>/raw/<kind>`` is the NATS subject
``scenic.<area>.raw.<kind>``, which the area's ``RAW-<area>`` stream keeps.  The payload is what
``POST /ingest/<kind>`` takes as ``application/x-ndjson``: one JSON record per line (on
``scenic/<area>/raw/mixed``, as ``POST /ingest``: every line names its ``kind``).

Nothing reaches the engine unvalidated: the front of the area (``scenic-twin run --bus``) reads
the raw stream with a durable consumer and hands every message to its :class:`Ingestor` (the same
validation, de-duplication and dead-letter as HTTP, with the source ``mqtt:<subject>``).  A raw
message is acknowledged only after the ingestor returned, i.e. after its good records are stored
in ``FEEDS-<area>`` and its bad ones in the dead-letter store with their reasons; a front that
dies in between gets the message again, and the ingestor's de-duplication makes that harmless.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from . import names
from .jetstream import Bus

log = logging.getLogger(__name__)


class RawIntake:
    """Reads ``RAW-<area>`` into ``ingestor`` until :meth:`stop` (run :meth:`run` in a thread)."""

    def __init__(self, bus: Bus, area: str, ingestor, *, batch: int = 64) -> None:
        self.bus = bus
        self.area = names.check_area(area)
        self.ingestor = ingestor
        self.batch = batch
        self.stop_event = threading.Event()
        self.messages = 0
        self.records_accepted = 0
        self.records_rejected = 0
        self._sub = None

    def _subscribe(self):
        from nats.js import api
        cfg = api.ConsumerConfig(durable_name=names.intake_consumer(self.area), ack_policy=api.AckPolicy.EXPLICIT,
                                 ack_wait=120.0, max_ack_pending=1024, deliver_policy=api.DeliverPolicy.ALL,
                                 description=f"the front of {self.area}: raw gateway records into its ingestor")
        return self.bus.call(self.bus.js.pull_subscribe(names.raw_subject(self.area, ">"),
                                                        durable=names.intake_consumer(self.area),
                                                        stream=names.raw_stream(self.area), config=cfg))

    def poll(self, timeout: float = 1.0) -> int:
        """Ingest the raw messages that are there; returns how many were handled."""
        import asyncio

        import nats.errors
        from indicators.feeds.schemas import SCHEMAS
        if self._sub is None:
            self._sub = self._subscribe()
        try:
            msgs = self.bus.call(asyncio.wait_for(self._sub.fetch(self.batch, timeout=timeout), timeout + 10))
        except (nats.errors.TimeoutError, asyncio.TimeoutError, TimeoutError):
            return 0
        for m in msgs:
            kind = m.subject.rsplit(".", 1)[1]
            source = f"mqtt:{m.subject}"[:200]
            if kind in SCHEMAS:
                receipt = self.ingestor.submit_ndjson(m.data, kind=kind, source=source)
            else:
                # every line rejected with the reason, kept in the dead-letter store
                receipt = self.ingestor.submit_ndjson(m.data, kind=None, source=source)
            self.records_accepted += receipt.accepted
            self.records_rejected += len(receipt.rejected)
            self.bus.call(m.ack())         # only now: the good records are stored, the bad kept aside
            self.messages += 1
        return len(msgs)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.poll()
            except Exception:
                # the bus is away (a node restarting): the durable consumer keeps our place
                log.exception("raw intake of %s: reading failed; trying again", self.area)
                self._sub = None
                self.stop_event.wait(2.0)

    def stop(self) -> None:
        self.stop_event.set()

    def status(self) -> dict[str, Any]:
        return {"messages": self.messages, "accepted": self.records_accepted, "rejected": self.records_rejected}
