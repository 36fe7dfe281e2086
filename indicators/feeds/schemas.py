"""Arrow schemas of the scenic area's feed kinds.

Every feed record carries ``event_id`` (unique per source; the key for
idempotent de-duplication), ``event_time`` (when it happened, UTC, ms) and
``source`` (which system sent it).  Units are written into each field's
metadata (``unit``) so that a schema printed with ``scenic-twin feeds schema``
documents itself.  Ids of zones, assets, cameras, routes and stations are the
inventory's ids (``twin_assets``).
"""
from __future__ import annotations

from datetime import timedelta

import pyarrow as pa

TS = pa.timestamp("ms", tz="UTC")

#: The one allowed lateness of every feed: an event may arrive this long after the newest event of
#: its kind and still count.  Judged once, at ingestion (indicators.feeds.ingest); the engine uses
#: the same horizon to wait for stragglers before it computes a tick.  Feeds arrive in minute batches
#: (gateways, the simulator), hence 2 minutes.  See docs/feeds.md, "Lateness and duplicates".
ALLOWED_LATENESS = timedelta(minutes=2)


def _f(name: str, type_: pa.DataType, unit: str = "", doc: str = "", nullable: bool = True) -> pa.Field:
    meta = {}
    if unit:
        meta["unit"] = unit
    if doc:
        meta["doc"] = doc
    return pa.field(name, type_, nullable=nullable, metadata=meta or None)


_COMMON = [
    _f("event_id", pa.string(), doc="unique per source; duplicates are dropped", nullable=False),
    _f("event_time", TS, unit="UTC ms", doc="when the observation was made", nullable=False),
    _f("source", pa.string(), doc="sending system, e.g. 'sim', 'gtfs-rt:bullrunner'"),
]

# The 24 AI-video algorithms the platform runs (the real platform's list is
# unpublished; chosen from the published city-management / scenic-area lists
# in shared/notes/domain.md).  Order is the dense code used by the engine.
VIDEO_ALGORITHMS: tuple[str, ...] = (
    "crowd_gathering", "crowd_density_over_limit", "running", "wrong_way_flow",
    "loitering", "queue_length", "fighting", "fall", "sos_gesture",
    "fence_climbing", "zone_intrusion", "person_near_water", "smoke",
    "open_flame", "street_vendor", "roaming_hawker", "illegal_parking",
    "bike_misparking", "illegal_advertising", "exposed_litter",
    "overflowing_bin", "floating_debris", "standing_water", "camera_abnormal",
)

# Guangdong warning signals (rules in force since 2019-01-01) plus the national
# thunderstorm-gale signal used in Guangzhou.
WARNING_SIGNALS: tuple[str, ...] = (
    "typhoon", "rainstorm", "thunderstorm_gale", "high_temperature", "cold",
    "fog", "haze", "road_icing", "hail", "forest_fire",
)
WARNING_COLOURS: tuple[str, ...] = ("white", "blue", "yellow", "orange", "red")
# An official warning of none of those types (an earthquake, a tsunami, a flood
# watch, a fire …) is still shown, as a generic warning with signal "other";
# its colour comes from its CAP severity, "unknown" when that is Unknown.
OTHER_WARNING = "other"
WARNING_ROW_SIGNALS: tuple[str, ...] = WARNING_SIGNALS + (OTHER_WARNING,)
NO_COLOUR = "unknown"
WARNING_ROW_COLOURS: tuple[str, ...] = WARNING_COLOURS + (NO_COLOUR,)

FACILITY_METRICS: dict[str, str] = {
    # metric -> unit
    "lamp_on": "bool (1 lit / 0 dark)",
    "lamp_power_w": "W",
    "hydrant_pressure_mpa": "MPa",
    "cover_tilt_deg": "degree",
    "cover_displacement_mm": "mm",
    "well_water_level_m": "m below cover",
    "camera_online": "bool",
    "lift_running": "bool",
    "escalator_running": "bool",
    "toilet_occupancy": "ratio 0-1",
    "bin_fill": "ratio 0-1",
    # a work order (the maintenance system): 1 from the start of planned work on the asset, 0 when it
    # is back in service; meanwhile the asset is not expected to work (neither available nor failed)
    "maintenance": "bool (1 under maintenance / 0 back in service)",
    # parking (Smart Data Models OffStreetParking / OnStreetParking / ParkingSpot)
    "parking_free_spaces": "spaces",
    "parking_occupancy": "ratio 0-1",
    # river water quality (Smart Data Models WaterQualityObserved)
    "water_temperature_c": "°C",
    "water_ph": "pH",
    "dissolved_oxygen_mg_l": "mg/L",
    "turbidity_ntu": "NTU",
    "water_conductivity_us_cm": "µS/cm",
}

CASE_CATEGORIES: tuple[str, ...] = (
    "litter", "bike_misparking", "street_vendor", "illegal_parking",
    "facility_damage", "complaint", "lost_person", "medical", "noise",
    "illegal_advertising", "crowd_safety", "other",
)

SCHEMAS: dict[str, pa.Schema] = {
    "crowd": pa.schema(_COMMON + [
        _f("zone_id", pa.string(), nullable=False),
        _f("cell_id", pa.string(), doc="grid cell within the zone, null for the zone total"),
        _f("count", pa.int32(), unit="persons", doc="people present (mobile signalling estimate)", nullable=False),
    ]),
    "gate": pa.schema(_COMMON + [
        _f("gate_id", pa.string(), nullable=False),
        _f("zone_id", pa.string(), nullable=False),
        _f("entries", pa.int32(), unit="persons", nullable=False),
        _f("exits", pa.int32(), unit="persons", nullable=False),
        _f("interval_s", pa.int32(), unit="s", doc="counting interval ending at event_time"),
    ]),
    "video": pa.schema(_COMMON + [
        _f("camera_id", pa.string(), nullable=False),
        _f("algorithm", pa.string(), doc="one of VIDEO_ALGORITHMS", nullable=False),
        _f("confidence", pa.float32(), unit="0-1", nullable=False),
        _f("zone_id", pa.string()),
        _f("object_count", pa.int32(), unit="objects"),
        _f("lon", pa.float64(), unit="degree WGS 84"),
        _f("lat", pa.float64(), unit="degree WGS 84"),
    ]),
    "facility": pa.schema(_COMMON + [
        _f("asset_id", pa.string(), nullable=False),
        _f("asset_type", pa.string()),
        _f("metric", pa.string(), doc="one of FACILITY_METRICS", nullable=False),
        _f("value", pa.float64(), unit="see FACILITY_METRICS", nullable=False),
    ]),
    "bus": pa.schema(_COMMON + [
        _f("vehicle_id", pa.string(), nullable=False),
        _f("route_id", pa.string()),
        _f("trip_id", pa.string()),
        _f("stop_id", pa.string()),
        _f("lon", pa.float64(), unit="degree WGS 84"),
        _f("lat", pa.float64(), unit="degree WGS 84"),
        _f("bearing", pa.float32(), unit="degree"),
        _f("speed_mps", pa.float32(), unit="m/s"),
        _f("occupancy_status", pa.string(), doc="GTFS-RT OccupancyStatus name"),
        _f("occupancy_pct", pa.float32(), unit="%"),
        _f("delay_s", pa.int32(), unit="s", doc="positive = late"),
    ]),
    "station": pa.schema(_COMMON + [
        _f("station_id", pa.string(), nullable=False),
        _f("entries", pa.int32(), unit="persons", nullable=False),
        _f("exits", pa.int32(), unit="persons", nullable=False),
        _f("interval_s", pa.int32(), unit="s"),
        _f("platform_persons", pa.int32(), unit="persons"),
        _f("control_level", pa.int8(), doc="0 none, 1-3 station crowd-control level"),
    ]),
    "traffic": pa.schema(_COMMON + [
        _f("segment_id", pa.string(), nullable=False),
        _f("speed_kmh", pa.float32(), unit="km/h", nullable=False),
        _f("flow_vph", pa.float32(), unit="vehicles/h"),
        _f("occupancy_pct", pa.float32(), unit="%"),
    ]),
    "weather": pa.schema(_COMMON + [
        _f("station_id", pa.string(), nullable=False),
        _f("temperature_c", pa.float32(), unit="°C"),
        _f("rain_1h_mm", pa.float32(), unit="mm"),
        _f("wind_speed_ms", pa.float32(), unit="m/s"),
        _f("gust_ms", pa.float32(), unit="m/s"),
        _f("humidity_pct", pa.float32(), unit="%"),
        _f("visibility_m", pa.float32(), unit="m"),
    ]),
    "warning": pa.schema(_COMMON + [
        _f("signal", pa.string(), doc="one of WARNING_ROW_SIGNALS", nullable=False),
        _f("colour", pa.string(), doc="one of WARNING_ROW_COLOURS", nullable=False),
        _f("status", pa.string(), doc="issued | updated | cancelled", nullable=False),
        _f("area", pa.string(), doc="untrusted feed text, in `language`"),
        _f("headline", pa.string(), doc="untrusted feed text, in `language`"),
        _f("expires", TS, unit="UTC ms"),
        # what a CAP message says beyond the signal (null for other sources)
        _f("event", pa.string(), doc="the issuer's name of the event, untrusted feed text, in `language`"),
        _f("language", pa.string(),
           doc="language of event, headline and area: Chinese if sent, else English, else the first"),
        _f("event_en", pa.string(), doc="English event text when the message has an English part"),
        _f("headline_en", pa.string(), doc="English headline when the message has an English part"),
        _f("area_en", pa.string(), doc="English area text when the message has an English part"),
        _f("texts", pa.string(), doc="JSON {language: {event, headline, area}} of further languages"),
        _f("category", pa.list_(pa.string()), doc="CAP categories, e.g. Met, Geo, Fire"),
        _f("severity", pa.string(), doc="extreme | severe | moderate | minor | unknown"),
        _f("urgency", pa.string(), doc="immediate | expected | future | past | unknown"),
        _f("certainty", pa.string(), doc="observed | likely | possible | unlikely | unknown"),
        _f("cap_message", pa.string(), doc="'sender,identifier,sent' of the CAP message, as references name it"),
        _f("references", pa.list_(pa.string()),
           doc="'sender,identifier,sent' of each earlier message this one updates or ends"),
        _f("signature", pa.string(), doc="verified | signed | unsigned"),
        _f("cap_version", pa.string(), doc="the CAP version the message was read as: 1.1 or 1.2"),
    ]),
    "case": pa.schema(_COMMON + [
        _f("case_id", pa.string(), nullable=False),
        _f("category", pa.string(), doc="one of CASE_CATEGORIES", nullable=False),
        _f("status", pa.string(), doc="open | dispatched | handling | verifying | closed", nullable=False),
        _f("zone_id", pa.string()),
        _f("lon", pa.float64(), unit="degree WGS 84"),
        _f("lat", pa.float64(), unit="degree WGS 84"),
        _f("description", pa.string(), doc="untrusted feed text"),
        _f("departments", pa.list_(pa.string())),
    ]),
    "staff": pa.schema(_COMMON + [
        _f("staff_id", pa.string(), nullable=False),
        _f("lon", pa.float64(), unit="degree WGS 84", nullable=False),
        _f("lat", pa.float64(), unit="degree WGS 84", nullable=False),
        _f("status", pa.string(), doc="available | busy | offline"),
    ]),
}

FEED_KINDS: tuple[str, ...] = tuple(SCHEMAS)
