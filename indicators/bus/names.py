"""Names and settings of the platform: subjects, streams, buckets and the environment variables
the code reads.  ``deploy/`` (Compose and Kubernetes) must use exactly these; a test checks it."""
from __future__ import annotations

import re

# ------------------------------------------------------------------ settings (environment)
ENV_BUS = "SCENIC_TWIN_BUS"                  # nats://host:4222[,nats://…]: the JetStream cluster
ENV_AREAS = "SCENIC_TWIN_AREAS"              # areas this engine worker owns: "canton-tower,…"
ENV_AREA_GROUPS = "SCENIC_TWIN_AREA_GROUPS"  # areas by worker ordinal: "a,b;c" (worker 0: a,b; 1: c)
ENV_WORKER_ORDINAL = "SCENIC_TWIN_WORKER_ORDINAL"  # this worker's ordinal (else from the host name)
ENV_REPLICAS = "SCENIC_TWIN_STREAM_REPLICAS" # JetStream replicas of every stream and bucket (3 in a cluster)
ENV_VAR = "SCENIC_TWIN_VAR"                  # the state folder
ENV_STORE = "SCENIC_TWIN_STORE"              # postgresql://… for alerts, cases, plans, thresholds, users, audit
ENV_AREA = "SCENIC_TWIN_AREA"                # the area a front (`scenic-twin run --bus`) serves
ENV_INGEST_TOKEN = "SCENIC_TWIN_INGEST_TOKEN"  # bearer token feeds send to /ingest (required off loopback)
ENV_HOSTS = "SCENIC_TWIN_HOSTS"              # host names screens use (Host header allow-list)

ENV_DATA = "SCENIC_TWIN_DATA"                # where inventory.parquet and scenarios.toml are read from
ENV_CAP_TRUST = "SCENIC_TWIN_CAP_TRUST"      # folder of PEM certificates CAP signatures are checked against
ENV_CAP_SIGNED_ONLY = "SCENIC_TWIN_CAP_SIGNED_ONLY"  # CAP sources taken only when signed
ENV_FRAME_ANCESTORS = "SCENIC_TWIN_FRAME_ANCESTORS"  # CSP frame-ancestors (a kiosk wrapper)
ENV_RATE_PREFIX = "SCENIC_TWIN_RATE_"        # SCENIC_TWIN_RATE_<CLASS>=rate/burst (dashboard.ratelimit)

SETTINGS = (ENV_BUS, ENV_AREAS, ENV_AREA_GROUPS, ENV_WORKER_ORDINAL, ENV_REPLICAS, ENV_VAR, ENV_STORE,
            ENV_AREA, ENV_INGEST_TOKEN, ENV_HOSTS, ENV_DATA, ENV_CAP_TRUST, ENV_CAP_SIGNED_ONLY, ENV_FRAME_ANCESTORS)
"""Every environment variable the code reads (besides the SCENIC_TWIN_RATE_* family)."""

HOME_AREA = "canton-tower"
_AREA = re.compile(r"^[a-z][a-z0-9-]{0,39}$")

CKPT_BUCKET = "scenic-engine"
LIVE_BUCKET = "scenic-live"


def check_area(area: str) -> str:
    """An area id names subjects, streams and objects: lower-case letters, digits and '-'."""
    if not isinstance(area, str) or not _AREA.match(area):
        raise ValueError(f"area id {area!r}: use 1-40 lower-case letters, digits and '-', starting with a letter "
                         f"(e.g. {HOME_AREA})")
    return area


def feed_stream(area: str) -> str:
    return f"FEEDS-{check_area(area)}"


def feed_subject(area: str, kind: str = "*") -> str:
    return f"scenic.{check_area(area)}.feed.{kind}"


def values_stream(area: str) -> str:
    return f"VALUES-{check_area(area)}"


def values_subject(area: str) -> str:
    return f"scenic.{check_area(area)}.values"


def raw_stream(area: str) -> str:
    """Raw records from gateways (MQTT topic scenic/<area>/raw/<kind>), before validation."""
    return f"RAW-{check_area(area)}"


def raw_subject(area: str, kind: str = "*") -> str:
    return f"scenic.{check_area(area)}.raw.{kind}"


def intake_consumer(area: str) -> str:
    """The durable consumer the area's front reads its raw stream with."""
    return f"front-{check_area(area)}"


def snapshot_subject(area: str) -> str:
    """Every snapshot the area's front publishes (core NATS: the newest supersedes the rest)."""
    return f"scenic.{check_area(area)}.snapshot"


def snapshot_get_subject(area: str) -> str:
    """Request/reply: the front's current snapshot (a web worker starting)."""
    return f"scenic.{check_area(area)}.snapshot.get"


def service_subject(area: str) -> str:
    """Request/reply: a web worker's forwarded write or read, answered by the area's front."""
    return f"scenic.{check_area(area)}.service"


def dead_stream(area: str) -> str:
    """Messages of ``area``'s feed stream a worker could not read (published there by something
    else than the ingest front: a gateway writing straight to the subject), kept with the reason."""
    return f"DEAD-{check_area(area)}"


def dead_subject(area: str) -> str:
    return f"scenic.{check_area(area)}.dead"


def engine_consumer(area: str) -> str:
    """The durable consumer an engine worker reads ``area``'s feeds with."""
    return f"engine-{check_area(area)}"


def ckpt_object(area: str) -> str:
    return f"{check_area(area)}.ckpt"


def areas_for_ordinal(groups: str, ordinal: int) -> list[str]:
    """The areas worker ``ordinal`` owns under ``groups`` ("a,b;c": worker 0 owns a and b, worker 1
    owns c) - the orchestrator gives each worker its ordinal (a StatefulSet pod's name ends in it,
    a systemd template unit passes it); nothing is elected."""
    parts = [p for p in (groups or "").split(";")]
    if not 0 <= ordinal < len(parts):
        raise ValueError(f"worker ordinal {ordinal} has no areas in {ENV_AREA_GROUPS}={groups!r} "
                         f"({len(parts)} group(s)): add a group or run fewer workers")
    areas = [check_area(a.strip()) for a in parts[ordinal].split(",") if a.strip()]
    if not areas:
        raise ValueError(f"worker ordinal {ordinal}: its group in {ENV_AREA_GROUPS} is empty")
    return areas


def ordinal_from_hostname(hostname: str) -> int | None:
    """``engine-2`` -> 2 (a Kubernetes StatefulSet pod's host name ends in its ordinal)."""
    m = re.search(r"-(\d+)$", hostname or "")
    return int(m.group(1)) if m else None
