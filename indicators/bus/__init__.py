"""The platform's bus: NATS JetStream between ingestion, engine workers and web workers.

One process on one machine (``scenic-twin run``) needs none of this: its feed log is a local
file (:class:`~indicators.feeds.log.FeedLog`).  When several scenic areas, engine workers and
web workers share one platform, the feed log is a JetStream stream per area instead, reached
through the same ``Sink``/``Source`` seams (:mod:`.jetstream`); engine workers
(:mod:`.worker`) consume their areas' streams and publish indicator values; a local NATS server
for tests, benchmarks and a developer machine is started by :mod:`.server`.

Names on the bus (one place, :mod:`.names`)::

    stream FEEDS-<area>    subjects scenic.<area>.feed.<kind>   accepted feed batches (Arrow IPC)
    stream VALUES-<area>   subject  scenic.<area>.values        one message per computed tick:
                                                               the indicators that changed
    object store scenic-engine      <area>.ckpt                 the area's engine checkpoint
    key-value    scenic-live        <area>                      the latest full values (keyframe)
"""
