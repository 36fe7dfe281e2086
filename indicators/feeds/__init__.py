"""Feed ingestion of the scenic-area twin.

Streamed records (crowd, gates, video alarms, facilities, buses, metro
stations, road traffic, weather and warnings, cases, staff) are validated
against :mod:`indicators.feeds.schemas`, de-duplicated, split into on-time and
late events, appended to a durable log (:mod:`.log`) and published to the
indicator engine (:mod:`.ingest`).  Bad records are never dropped silently:
they go to the dead-letter store (:mod:`.deadletter`).  Front ends: HTTP
(:mod:`.http`) and a drop directory (:mod:`.dropdir`).
"""
