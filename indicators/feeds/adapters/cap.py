"""CAP 1.2 (OASIS Common Alerting Protocol) weather warnings -> ``warning`` rows.

Guangzhou's meteorological service publishes its warning signals as CAP.
The XML is read with ``defusedxml`` with DTDs forbidden: a document that
declares a DTD, an entity or an external reference is refused whole with
a Reject, before anything is resolved or fetched (XXE protection).

One ``warning`` row per ``<info>`` block (an alert may carry one block per
language; each becomes a row).  A message missing any element that CAP 1.2
requires (alert: identifier, sender, sent, status, msgType, scope; info:
category, event, urgency, severity, certainty; area: areaDesc) is rejected
whole, the reason listing every missing element.  Only ``status`` Actual
becomes rows: Exercise, Test, System and Draft messages are noted, never
shown as real warnings.

Fields
------
* ``status``: msgType Alert -> issued, Update -> updated, Cancel ->
  cancelled (Ack and Error carry no warning: noted).
* ``event_time``: the alert's ``sent`` (required, so always present);
  ``expires``: info/expires; ``area``: the info's areaDesc values joined
  with "; "; ``headline``: info/headline, whitespace collapsed (untrusted
  text, stored as-is).
* ``event_id``: ``<sender>/<identifier>#<info index>``.

Signal mapping (``WARNING_SIGNALS``)
-----------------------------------
Looked for in the info's event, then headline, then eventCode and
parameter values; within one text the earliest match wins, so
"thunderstorm with hail" is hail but "severe thunderstorm, hail" is
thunderstorm_gale.  Matching is case-insensitive, English words on word
boundaries:

==================  =====================================================  ==========================
signal              English                                                Chinese
==================  =====================================================  ==========================
typhoon             typhoon, tropical cyclone/storm/depression, hurricane  台风, 热带气旋
rainstorm           rainstorm, heavy/torrential rain, extreme rainfall     暴雨
thunderstorm_gale   severe thunderstorm; thunderstorm with gale/wind/      雷雨大风, 雷暴大风
                    squall; thunder squall
high_temperature    heat, heat wave, high temperature                      高温
cold                cold, cold wave/spell/weather, extreme cold,           寒冷, 寒潮
                    wind chill
fog                 fog (dense/thick/heavy fog)                            大雾, 浓雾
haze                haze, smog                                             灰霾, 霾
road_icing          road icing, icy road, black ice                        道路结冰
hail                hail, hailstorm                                        冰雹
forest_fire         forest fire, wildfire, bushfire, fire danger/weather,  森林火险, 森林火灾
                    red flag warning
==================  =====================================================  ==========================

"Severe thunderstorm" maps to thunderstorm_gale because the term is defined
by damaging wind (or large hail).  SAME event codes SVR (severe
thunderstorm warning), HUW (hurricane warning) and TRW (tropical storm
warning) map to thunderstorm_gale, typhoon and typhoon.  Anything else —
a plain thunderstorm or lightning warning, a flood, a security advisory —
is rejected with a reason naming the event text; it is never moved to the
"closest" signal.

Colour mapping (``WARNING_COLOURS``)
-----------------------------------
The words red/orange/yellow/blue/white, or 红色/橙色/黄色/蓝色/白色, looked
for in parameter values, then event, then headline; within one text the
last mention wins (upgrade wording such as "黄色升级为橙色" or "upgraded to
orange" names the new level last).  Chinese colours need the 色 suffix
because 黄 alone is also a place name (黄埔, a Guangzhou district); "red
flag" is not a colour.  Without a colour word, CAP severity decides:
Extreme -> red, Severe -> orange, Moderate -> yellow, Minor -> blue;
severity Unknown without a colour word is rejected.
"""
from __future__ import annotations

import codecs
import re
from xml.etree.ElementTree import Element, ParseError, tostring

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml import ElementTree as SafeET

from indicators.feeds.schemas import WARNING_SIGNALS

from .base import Collector, Parsed, parse_instant, squash

CAP_12 = "urn:oasis:names:tc:emergency:cap:1.2"
REQUIRED_ALERT = ("identifier", "sender", "sent", "status", "msgType", "scope")
REQUIRED_INFO = ("category", "event", "urgency", "severity", "certainty")
STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = {"Alert": "issued", "Update": "updated", "Cancel": "cancelled",
             "Ack": None, "Error": None}
SEVERITY_COLOUR = {"Extreme": "red", "Severe": "orange", "Moderate": "yellow", "Minor": "blue"}

_I = re.IGNORECASE
SIGNAL_PATTERNS: dict[str, re.Pattern] = {
    "typhoon": re.compile(r"\btyphoons?\b|\btropical\s+(?:cyclone|storm|depression)s?\b"
                          r"|\bhurricanes?\b|台风|热带气旋", _I),
    "rainstorm": re.compile(r"\brainstorms?\b|\b(?:heavy|torrential)\s+rain(?:fall)?\b"
                            r"|\bextreme\s+rainfall\b|暴雨", _I),
    "thunderstorm_gale": re.compile(
        r"\bsevere\s+thunderstorms?\b"
        r"|\bthunderstorms?\s+(?:(?:and|with)\s+)?(?:(?:strong|damaging|high)\s+)?"
        r"(?:gales?|winds?|squalls?)\b|\bthunder\s*squalls?\b|雷雨大风|雷暴大风", _I),
    "high_temperature": re.compile(r"\bheat(?:\s*waves?)?\b|\bhigh\s+temperatures?\b|高温", _I),
    "cold": re.compile(r"\b(?:extreme\s+)?cold(?:\s+(?:wave|spell|weather))?\b|\bwind\s+chill\b"
                       r"|寒冷|寒潮", _I),
    "fog": re.compile(r"\bfog\b|大雾|浓雾", _I),
    "haze": re.compile(r"\bhaze\b|\bsmog\b|灰霾|霾", _I),
    "road_icing": re.compile(r"\broad\s+icing\b|\bicy\s+roads?\b|\bblack\s+ice\b|道路结冰", _I),
    "hail": re.compile(r"\bhail(?:storms?)?\b|冰雹", _I),
    "forest_fire": re.compile(r"\bforest\s+fires?\b|\bwildfires?\b|\bbush\s*fires?\b"
                              r"|\bfire\s+(?:danger|weather)\b|\bred\s+flag\s+warning\b"
                              r"|森林火险|森林火灾", _I),
}
assert set(SIGNAL_PATTERNS) == set(WARNING_SIGNALS)
SAME_CODES = {"SVR": "thunderstorm_gale", "HUW": "typhoon", "TRW": "typhoon"}

_COLOUR = re.compile(r"\b(red|orange|yellow|blue|white)\b|(红|橙|黄|蓝|白)色", _I)
_ZH_COLOUR = {"红": "red", "橙": "orange", "黄": "yellow", "蓝": "blue", "白": "white"}
_NOT_COLOUR = re.compile(r"\bred\s+flag\b", _I)
_THUNDER = re.compile(r"thunder|t-?storm|lightning|雷", _I)
_ENCODING = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*"
                       rb"[\"']([A-Za-z0-9._-]+)[\"'][^>]*\?>")


def parse(data: bytes, source: str | None = None) -> Parsed:
    c = Collector(source or "cap")
    root = _read_xml(data, c)
    if root is None:
        return c.result()
    if _local(root.tag) != "alert":
        c.reject(data, f"the root element is <{_local(root.tag)}>, not a CAP <alert>", "root")
        return c.result()
    ns = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    if ns != CAP_12:
        c.note(f"CAP namespace is {ns or 'missing'!r}, not {CAP_12!r}; read as CAP 1.2")
    _alert(root, data, c)
    return c.result()


def _read_xml(data: bytes, c: Collector) -> Element | None:
    doc: bytes | str = bytes(data)
    declared = _ENCODING.match(doc)
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        # Expat reads only a few encodings; Chinese feeds may declare
        # GB2312/GBK/GB18030.  Decode in Python and hand over text.
        name = declared.group(1).decode("ascii")
        try:
            text = doc.decode(codecs.lookup(name).name)
        except (LookupError, UnicodeDecodeError) as exc:
            c.reject(data, f"the document declares encoding {name!r} but cannot be decoded "
                     f"with it ({exc})", "xml declaration")
            return None
        doc = text[text.index("?>") + 2:]
    try:
        return SafeET.fromstring(doc, forbid_dtd=True)
    except DTDForbidden:
        c.reject(data, "the document declares a DTD (<!DOCTYPE …>) and was refused: DTDs, "
                 "entity declarations and external references are forbidden in CAP input "
                 "(XXE protection); nothing was resolved or fetched", "DOCTYPE")
    except EntitiesForbidden as exc:
        c.reject(data, f"the document declares the entity '{exc.name}' and was refused: "
                 "entity declarations are forbidden in CAP input (XXE and entity-expansion "
                 "protection); nothing was resolved or fetched", f"entity '{exc.name}'")
    except ExternalReferenceForbidden as exc:
        c.reject(data, f"the document refers to the external resource '{exc.sysid}' and was "
                 "refused; nothing was fetched", "external reference")
    except ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        c.reject(data, f"not well-formed XML: {exc}", f"line {line}" if line else "payload")
    return None


def _local(tag) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _children(el: Element, name: str) -> list[Element]:
    return [ch for ch in el if _local(ch.tag) == name]


def _text(el: Element, name: str) -> str | None:
    for ch in el:
        if _local(ch.tag) == name:
            return squash(ch.text)
    return None


def _alert(root: Element, data: bytes, c: Collector) -> None:
    infos = _children(root, "info")
    missing = [name for name in REQUIRED_ALERT if not _text(root, name)]
    for i, info in enumerate(infos):
        missing += [f"info[{i}]/{name}" for name in REQUIRED_INFO if not _text(info, name)]
        for j, area in enumerate(_children(info, "area")):
            if not _text(area, "areaDesc"):
                missing.append(f"info[{i}]/area[{j}]/areaDesc")
    identifier = _text(root, "identifier") or "?"
    label = f"alert '{identifier}'"
    problems = []
    if missing:
        problems.append("missing required element(s): " + ", ".join(missing))
    status, msg_type, sent_text = _text(root, "status"), _text(root, "msgType"), _text(root, "sent")
    if status and status not in STATUSES:
        problems.append(f"status '{status}' is not one of {', '.join(STATUSES)}")
    if msg_type and msg_type not in MSG_TYPES:
        problems.append(f"msgType '{msg_type}' is not one of {', '.join(MSG_TYPES)}")
    sent = parse_instant(sent_text) if sent_text else None
    if sent_text and sent is None:
        problems.append(f"sent '{sent_text}' is not a date-time")
    if problems:
        c.reject(data, f"{label} is not valid CAP 1.2: " + "; ".join(problems), "alert")
        return
    if status != "Actual":
        c.note(f"{label} has status '{status}': not an actual warning, not loaded")
        return
    row_status = MSG_TYPES[msg_type]
    if row_status is None:
        c.note(f"{label} is a CAP {msg_type} message and carries no warning; not loaded")
        return
    if not infos:
        c.note(f"{label} ({msg_type}) has no <info> block; nothing to load")
        return
    sender = _text(root, "sender")
    for i, info in enumerate(infos):
        _info(info, i, label, sender, identifier, sent, row_status, c)
    if len(infos) > 1:
        langs = [_text(info, "language") or "en-US" for info in infos]
        c.note(f"{label} has {len(infos)} <info> blocks (languages {', '.join(langs)}); "
               "each is a separate row")


def _info(info: Element, i: int, label: str, sender: str, identifier: str, sent,
          row_status: str, c: Collector) -> None:
    where = f"info[{i}]"
    raw = tostring(info, encoding="unicode")
    event = _text(info, "event") or ""
    signal = _signal(info)
    if signal is None:
        hint = (" (a thunderstorm or lightning warning without gale or strong wind is not one "
                "of them)" if _THUNDER.search(event) else "")
        c.reject(raw, f"{label} {where}: event '{event}' is not one of the Guangdong warning "
                 f"signals ({', '.join(WARNING_SIGNALS)}){hint}", f"{where}/event")
        return
    colour = _colour(info)
    if colour is None:
        severity = _text(info, "severity")
        c.reject(raw, f"{label} {where}: no colour named in parameters, event or headline and "
                 f"severity '{severity}' gives none", f"{where}/severity")
        return
    expires = None
    expires_text = _text(info, "expires")
    if expires_text:
        expires = parse_instant(expires_text)
        if expires is None:
            c.reject(raw, f"{label} {where}: expires '{expires_text}' is not a date-time",
                     f"{where}/expires")
            return
    areas = [_text(a, "areaDesc") for a in _children(info, "area")]
    c.row(
        "warning",
        event_id=f"{sender}/{identifier}#{i}",
        event_time=sent,
        signal=signal,
        colour=colour,
        status=row_status,
        area="; ".join(a for a in areas if a) or None,
        headline=_text(info, "headline"),
        expires=expires,
    )


def _values(info: Element, name: str) -> list[str]:
    """The ``<value>`` texts of an info's eventCode or parameter elements."""
    return [v for el in _children(info, name) if (v := _text(el, "value"))]


def _signal(info: Element) -> str | None:
    texts = [_text(info, "event"), _text(info, "headline")]
    texts += _values(info, "eventCode") + _values(info, "parameter")
    for text in texts:
        if not text:
            continue
        found = [(m.start(), sig) for sig, pat in SIGNAL_PATTERNS.items() if (m := pat.search(text))]
        if found:
            return min(found)[1]
    for code in _values(info, "eventCode"):
        if code.upper() in SAME_CODES:
            return SAME_CODES[code.upper()]
    return None


def _colour(info: Element) -> str | None:
    for text in _values(info, "parameter") + [_text(info, "event"), _text(info, "headline")]:
        if not text:
            continue
        matches = list(_COLOUR.finditer(_NOT_COLOUR.sub(" ", text)))
        if matches:
            last = matches[-1]
            return last.group(1).lower() if last.group(1) else _ZH_COLOUR[last.group(2)]
    return SEVERITY_COLOUR.get(_text(info, "severity") or "")

