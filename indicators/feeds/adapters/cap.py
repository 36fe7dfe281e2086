"""CAP (OASIS Common Alerting Protocol) 1.2 and 1.1 warnings -> ``warning`` rows.

Guangzhou's meteorological service publishes its warning signals as CAP; the
NWS, MeteoAlarm members and the WMO Alert Hub exchange warnings as CAP too.
The XML is read with ``defusedxml`` with DTDs forbidden: a document that
declares a DTD, an entity or an external reference is refused whole, before
anything is resolved or fetched (XXE protection).

Versions
--------
The namespace says the version, and each is read with its own rules; the row
says which (``cap_version``).  Required elements are the same in both
(alert: identifier, sender, sent, status, msgType, scope; info: category,
event, urgency, severity, certainty; area: areaDesc).  What differs:

==============================  ==============================  ===============================
rule                            CAP 1.1                         CAP 1.2
==============================  ==============================  ===============================
certainty "Very Likely"         read as Likely (deprecated in   refused (not a 1.2 value)
                                1.1: "SHOULD be treated as
                                equivalent to Likely")
responseType values             Shelter Evacuate Prepare        the 1.1 values plus Avoid and
                                Execute Monitor Assess None     AllClear
resource/mimeType               optional                        required
==============================  ==============================  ===============================

status is Actual/Exercise/System/Test/Draft in both (Draft came with 1.1;
CAP 1.0 had four values).  A document in any other namespace is read with the
1.2 rules and noted.  Every problem of a message is listed in one reject; a
message with any problem gives no row.  Only ``status`` Actual gives rows;
Exercise, Test, System and Draft messages and Ack/Error messages are noted.

One row per warning, all languages in it
----------------------------------------
An alert carries one ``<info>`` per language (CAP: "each set of info blocks
with the same language is a separate sequence").  The k-th info of every
language describe the same warning and become ONE row, ``event_id``
``<sender>/<identifier>#<k>``: ``event``, ``headline`` and ``area`` in Chinese
when the message has Chinese (the UI speaks Chinese first), else English, else
its first language (``language`` says which); ``event_en``, ``headline_en``,
``area_en`` from the English part; further languages in ``texts`` (JSON).

What the warning is: meaning, not substring
-------------------------------------------
The signal comes from what the issuer coded, in this order, and never from
free text such as areaDesc, description, instruction or arbitrary parameter
values (a tsunami warning for "Cold Bay" is not a cold warning):

1. ``<eventCode>`` pairs of a known scheme (``EVENT_CODES``): SAME (the US
   EAS/NWR codes, e.g. SVR severe thunderstorm, HUW hurricane, EQW earthquake,
   TSW tsunami) and QWEATHER (the event list of QWeather's warning API, which
   carries China's national warning types, e.g. 1003 暴雨).  A known code
   decides, also when it is no Guangdong signal.
2. Issuer parameters that name the event type (``awareness_type`` of the
   MeteoAlarm profile, e.g. "4; fog").
3. The ``<event>`` text, matched by the table below.  Case-insensitive,
   English words on word boundaries; within the text the earliest match wins.

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

Anything else — an earthquake, a tsunami, a flood watch, a fire, a plain
thunderstorm, a security advisory — is still an official warning the control
room must see: it becomes a generic row, ``signal`` "other", with its event
text, category, severity, urgency, certainty, area and headline.

Colour
------
Of a Guangdong signal: a colour word (red/orange/yellow/blue/white or
红色/橙色/黄色/蓝色/白色) in a parameter that names the colour or level
(``COLOUR_PARAMETERS``), then in the event text, then in the headline — the
last mention in a text wins, so "黄色升级为橙色" is orange; 黄 alone is a place
(黄埔) and "red flag" no colour — else from CAP severity: Extreme red, Severe
orange, Moderate yellow, Minor blue.  Severity Unknown without a colour word is
refused, except in an all-clear (which needs none: "unknown").  Of a generic
warning: the colour parameter, else severity, else "unknown" (never guessed
from its free text).

Lifecycle
---------
msgType Alert -> ``status`` issued, Update -> updated, Cancel -> cancelled.
An all-clear — msgType Cancel, urgency Past, or (1.2) responseType AllClear —
is a ``cancelled`` row: it ends a warning, it is never an active one.  The
message's own ``sender,identifier,sent`` is kept in ``cap_message`` and its
``<references>`` (space-separated ``sender,identifier,sent`` triples) in
``references``, so that the runtime replaces (Update) or ends (Cancel,
all-clear) the warning referred to (``indicators.alerts.compound.fold_warnings``).
A Cancel without ``<info>`` still gives a row that ends what it references.
An empty ``<references/>`` in an Update or Cancel, or a reference that is not
a triple with a date-time, is a validation problem.

Signatures
----------
An XML-DSig enveloped signature (``ds:Signature`` as a child of ``<alert>``,
as WMO-style CAP is signed) is verified with signxml against a trust store: a
folder of PEM certificates, given as ``trust=`` or by the setting
``SCENIC_TWIN_CAP_TRUST``.  ``signature`` in the row says:

* ``verified`` — a trusted certificate verifies it; the row is read from the
  signed content signxml returns ("see what is signed");
* ``signed`` — intact under the certificate it carries, but that certificate
  is not in the trust store (or no trust store is set);
* ``unsigned`` — no signature.

A signature that does not verify (content or SignedInfo changed after
signing) is refused with the reason.  Whether unsigned or unverified messages
are accepted is a per-source setting: sources named in
``SCENIC_TWIN_CAP_SIGNED_ONLY`` (comma-separated) or parsed with
``signed_only=True`` accept only ``verified`` messages; by default they are
accepted and marked.
"""
from __future__ import annotations

import base64
import codecs
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError, tostring

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml import ElementTree as SafeET

from indicators.feeds.schemas import NO_COLOUR, OTHER_WARNING, WARNING_SIGNALS

from .base import Collector, Parsed, parse_instant, squash

CAP_12 = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_11 = "urn:oasis:names:tc:emergency:cap:1.1"
DSIG = "http://www.w3.org/2000/09/xmldsig#"
TRUST_SETTING = "SCENIC_TWIN_CAP_TRUST"
SIGNED_ONLY_SETTING = "SCENIC_TWIN_CAP_SIGNED_ONLY"


@dataclass(frozen=True)
class Rules:
    """What one CAP version allows, where versions differ."""

    version: str
    certainty: dict[str, str]          # value as sent -> value meant
    response_types: tuple[str, ...]
    resource_needs_mime_type: bool


_CERTAINTY = {v: v for v in ("Observed", "Likely", "Possible", "Unlikely", "Unknown")}
_RESPONSES_11 = ("Shelter", "Evacuate", "Prepare", "Execute", "Monitor", "Assess", "None")
RULES = {
    CAP_12: Rules("1.2", _CERTAINTY, _RESPONSES_11 + ("Avoid", "AllClear"), True),
    CAP_11: Rules("1.1", {**_CERTAINTY, "Very Likely": "Likely"}, _RESPONSES_11, False),
}
REQUIRED_ALERT = ("identifier", "sender", "sent", "status", "msgType", "scope")
REQUIRED_INFO = ("category", "event", "urgency", "severity", "certainty")
STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
SCOPES = ("Public", "Restricted", "Private")
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport",
              "Infra", "CBRNE", "Other")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
MSG_TYPES = {"Alert": "issued", "Update": "updated", "Cancel": "cancelled", "Ack": None, "Error": None}
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

_OTHER = OTHER_WARNING
# eventCode valueName (upper case) -> code -> signal ("other": known, and no Guangdong signal)
EVENT_CODES: dict[str, dict[str, str]] = {
    # US EAS / NOAA Weather Radio SAME event codes (47 CFR 11.31, weather.gov/nwr/eventcodes)
    "SAME": {
        "SVR": "thunderstorm_gale", "SVA": "thunderstorm_gale", "HUW": "typhoon", "HUA": "typhoon",
        "TRW": "typhoon", "TRA": "typhoon",
        **dict.fromkeys((
            "EQW", "TSW", "TSA", "FLW", "FLA", "FFW", "FFA", "FFS", "FLS", "TOR", "TOA", "CFW", "CFA",
            "BZW", "WSW", "WSA", "HWW", "HWA", "EWW", "DSW", "SVS", "SPS", "SMW", "HLS", "AVW", "AVA",
            "FRW", "VOW", "CEM", "CDW", "LEW", "LAE", "EVI", "EVA", "SPW", "HMW", "NUW", "RHW", "BHW",
            "CHW", "CWW", "DBA", "DBW", "DEW", "CAE", "TOE", "ADR"), _OTHER),
    },
    # QWeather warning API event list (dev.qweather.com/docs/api/warning/alert-events)
    "QWEATHER": {
        "1001": "typhoon", "1003": "rainstorm", "1005": "cold", "1009": "high_temperature",
        "1010": "high_temperature", "1015": "hail", "1017": "fog", "1019": "haze",
        "1020": "thunderstorm_gale", "1021": "road_icing", "1025": "forest_fire", "1034": "cold",
        "1041": "forest_fire", "1058": "thunderstorm_gale",
        **dict.fromkeys(("1002", "1004", "1006", "1007", "1013", "1014", "1022", "1023", "1028",
                         "1029", "1036", "1037", "1043"), _OTHER),
    },
}
# issuer parameters naming the event type: valueName (lower case) -> leading code -> signal
EVENT_PARAMETERS: dict[str, dict[str, str]] = {
    # MeteoAlarm CAP profile, "awareness_type" = "<n>; <name>"
    "awareness_type": {"4": "fog", "5": "high_temperature", "6": "cold", "8": "forest_fire",
                       "10": "rainstorm",
                       **dict.fromkeys(("1", "2", "3", "7", "9", "11", "12", "13"), _OTHER)},
}
# parameters whose value names the colour or level (valueName, lower case)
COLOUR_PARAMETERS = frozenset({"colour", "color", "颜色", "预警颜色", "级别", "预警级别", "awareness_level"})

_COLOUR = re.compile(r"\b(red|orange|yellow|blue|white)\b|(红|橙|黄|蓝|白)色", _I)
_ZH_COLOUR = {"红": "red", "橙": "orange", "黄": "yellow", "蓝": "blue", "白": "white"}
_NOT_COLOUR = re.compile(r"\bred\s+flag\b", _I)
_ENCODING = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*"
                       rb"[\"']([A-Za-z0-9._-]+)[\"'][^>]*\?>")


def parse(data: bytes, source: str | None = None, *, trust: str | os.PathLike | None = None,
          signed_only: bool | None = None) -> Parsed:
    """The ``warning`` rows of one CAP document.  ``trust``: the folder of
    trusted PEM certificates (default: the setting ``SCENIC_TWIN_CAP_TRUST``);
    ``signed_only``: accept only verified signatures (default: whether the
    source is named in ``SCENIC_TWIN_CAP_SIGNED_ONLY``)."""
    c = Collector(source or "cap")
    root = _read_xml(data, c)
    if root is None:
        return c.result()
    if _local(root.tag) != "alert":
        c.reject(data, f"the root element is <{_local(root.tag)}>, not a CAP <alert>", "root")
        return c.result()
    ns = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    rules = RULES.get(ns)
    if rules is None:
        rules = RULES[CAP_12]
        c.note(f"CAP namespace is {ns or 'missing'!r}, neither {CAP_12!r} nor {CAP_11!r}; read as CAP 1.2")
    if signed_only is None:
        listed = os.environ.get(SIGNED_ONLY_SETTING, "")
        signed_only = c.source in {s.strip() for s in listed.split(",") if s.strip()}
    if trust is None:
        trust = os.environ.get(TRUST_SETTING) or None
    checked = _check_signature(root, data, trust, signed_only, c)
    if checked is not None:
        signature, root = checked
        _alert(root, data, rules, signature, c)
    return c.result()


# --------------------------------------------------------------------------- XML
def _read_xml(data: bytes | str, c: Collector, where: str = "") -> Element | None:
    doc: bytes | str = data if isinstance(data, str) else bytes(data)
    declared = _ENCODING.match(doc) if isinstance(doc, bytes) else None
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
        c.reject(data, f"not well-formed XML{where}: {exc}", f"line {line}" if line else "payload")
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


def _pairs(info: Element, name: str) -> list[tuple[str, str]]:
    """(valueName, value) of an info's eventCode or parameter elements."""
    return [(_text(el, "valueName") or "", v) for el in _children(info, name) if (v := _text(el, "value"))]


# --------------------------------------------------------------------------- signatures
def _check_signature(root: Element, data: bytes, trust, signed_only: bool,
                     c: Collector) -> tuple[str, Element] | None:
    """(signature state, the alert to read) or None after a reject."""
    sigs = [ch for ch in root if ch.tag == f"{{{DSIG}}}Signature"]
    if not sigs:
        if signed_only:
            c.reject(data, f"the message is unsigned, and source '{c.source}' accepts only messages "
                     f"with a verified signature ({SIGNED_ONLY_SETTING})", "alert/Signature")
            return None
        return "unsigned", root
    if len(sigs) > 1:
        c.reject(data, f"the message carries {len(sigs)} signatures; one enveloped signature is "
                 "expected", "alert/Signature")
        return None
    from cryptography import x509
    from lxml import etree
    from signxml import SignatureConfiguration, XMLVerifier
    from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidSignature, SignXMLException

    config = SignatureConfiguration(location="./")  # enveloped: a child of <alert>

    def verify(cert):
        return XMLVerifier().verify(bytes(data), x509_cert=cert, expect_config=config)

    trusted = _trust_store(trust, c)
    failures = []
    for name, cert in trusted:
        try:
            result = verify(cert)
        except InvalidDigest as exc:
            c.reject(data, f"the signature of the message does not verify: the signed content was "
                     f"changed after signing ({exc}); refused as tampered", "alert/Signature")
            return None
        except (SignXMLException, ValueError) as exc:
            failures.append(f"{name}: {exc}")
            continue
        signed = result.signed_xml
        if signed is None or etree.QName(signed).localname != "alert":
            c.reject(data, "the signature covers only part of the message, not the whole <alert>; "
                     "refused", "alert/Signature")
            return None
        verified = _read_xml(etree.tostring(signed), c, " (the signed content)")
        return None if verified is None else ("verified", verified)

    carried = _carried_certificate(sigs[0], x509)
    if carried is None:
        if trusted:
            c.reject(data, "the signature is verified by no certificate of the trust store "
                     f"({'; '.join(failures)}) and carries none of its own; refused", "alert/Signature")
            return None
        c.note("a signature without a certificate could not be checked: no trust store is set "
               f"({TRUST_SETTING}); marked signed, not verified")
        state = "signed"
    else:
        try:
            verify(carried)
        except InvalidDigest as exc:
            c.reject(data, f"the signature of the message does not verify: the signed content was "
                     f"changed after signing ({exc}); refused as tampered", "alert/Signature")
            return None
        except InvalidCertificate as exc:
            c.reject(data, f"the signature of the message cannot be checked: its certificate is not "
                     f"usable ({exc}); refused", "alert/Signature")
            return None
        except InvalidSignature as exc:
            c.reject(data, f"the signature of the message does not verify ({exc}): its signed info "
                     "or signature value was changed; refused as tampered", "alert/Signature")
            return None
        except (SignXMLException, ValueError) as exc:
            c.reject(data, f"the signature of the message cannot be checked ({exc}); refused",
                     "alert/Signature")
            return None
        subject = carried.subject.rfc4514_string()
        where = "in the trust store" if trust else f"trusted: no trust store is set ({TRUST_SETTING})"
        c.note(f"the message is signed by '{subject}', which is not {where}; marked signed, not verified")
        state = "signed"
    if signed_only:
        c.reject(data, f"source '{c.source}' accepts only messages with a verified signature "
                 f"({SIGNED_ONLY_SETTING}), and this one's signer is not in the trust store", "alert/Signature")
        return None
    return state, root


def _trust_store(folder, c: Collector) -> list[tuple[str, object]]:
    """(file name, certificate) of every PEM certificate in the folder."""
    if not folder:
        return []
    from cryptography import x509
    path = Path(folder)
    if not path.is_dir():
        c.note(f"the CAP trust store '{path}' is not a folder; no certificate is trusted")
        return []
    out = []
    for f in sorted(path.iterdir()):
        if f.suffix.lower() not in (".pem", ".crt", ".cer"):
            continue
        try:
            certs = x509.load_pem_x509_certificates(f.read_bytes())
        except (OSError, ValueError) as exc:
            c.note(f"the trust store file '{f.name}' holds no readable PEM certificate ({exc}); skipped")
            continue
        out += [(f.name, cert) for cert in certs]
    return out


def _carried_certificate(sig: Element, x509):
    """The X.509 certificate a signature carries in KeyInfo, if any."""
    for el in sig.iter(f"{{{DSIG}}}X509Certificate"):
        try:
            return x509.load_der_x509_certificate(base64.b64decode("".join((el.text or "").split())))
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------- the alert
def _alert(root: Element, data: bytes, rules: Rules, signature: str, c: Collector) -> None:
    infos = _children(root, "info")
    identifier = _text(root, "identifier") or "?"
    label = f"alert '{identifier}'"
    status, msg_type, sent_text = _text(root, "status"), _text(root, "msgType"), _text(root, "sent")
    missing = [name for name in REQUIRED_ALERT if not _text(root, name)]
    problems = []
    for i, info in enumerate(infos):
        missing += [f"info[{i}]/{name}" for name in REQUIRED_INFO if not _text(info, name)]
        for j, area in enumerate(_children(info, "area")):
            if not _text(area, "areaDesc"):
                missing.append(f"info[{i}]/area[{j}]/areaDesc")
        problems += _info_problems(info, i, rules)
    if missing:
        problems.insert(0, "missing required element(s): " + ", ".join(missing))
    if status and status not in STATUSES:
        problems.append(f"status '{status}' is not one of {', '.join(STATUSES)}")
    if msg_type and msg_type not in MSG_TYPES:
        problems.append(f"msgType '{msg_type}' is not one of {', '.join(MSG_TYPES)}")
    scope = _text(root, "scope")
    if scope and scope not in SCOPES:
        problems.append(f"scope '{scope}' is not one of {', '.join(SCOPES)}")
    sent = parse_instant(sent_text) if sent_text else None
    if sent_text and sent is None:
        problems.append(f"sent '{sent_text}' is not a date-time")
    references, ref_problems = _references(root, msg_type)
    problems += ref_problems
    if problems:
        c.reject(data, f"{label} is not valid CAP {rules.version}: " + "; ".join(problems), "alert")
        return
    if status != "Actual":
        c.note(f"{label} has status '{status}': not an actual warning, not loaded")
        return
    row_status = MSG_TYPES[msg_type]
    if row_status is None:
        c.note(f"{label} is a CAP {msg_type} message and carries no warning; not loaded")
        return
    sender = _text(root, "sender")
    common = dict(event_time=sent, cap_message=f"{sender},{identifier},{sent_text}",
                  references=references, signature=signature, cap_version=rules.version)
    if msg_type in ("Update", "Cancel") and references is None:
        c.note(f"{label} is an {msg_type} that names no earlier message (<references>); it "
               f"{'replaces' if msg_type == 'Update' else 'ends'} the active warning of the same signal")
    if not infos:
        if msg_type == "Cancel" and references:
            c.row("warning", event_id=f"{sender}/{identifier}#0", signal=_OTHER, colour=NO_COLOUR,
                  status="cancelled", **common)
        else:
            c.note(f"{label} ({msg_type}) has no <info> block; nothing to load")
        return
    for k, group in enumerate(_by_language(infos)):
        _warning(group, k, label, row_status, f"{sender}/{identifier}#{k}", common, rules, c)


def _info_problems(info: Element, i: int, rules: Rules) -> list[str]:
    """Values of one info that its CAP version does not allow."""
    out = []
    for name, allowed in (("urgency", URGENCIES), ("severity", SEVERITIES),
                          ("certainty", tuple(rules.certainty))):
        v = _text(info, name)
        if v and v not in allowed:
            out.append(f"info[{i}]/{name} '{v}' is not one of {', '.join(allowed)} in CAP {rules.version}")
    for v in (squash(el.text) for el in _children(info, "category")):
        if v and v not in CATEGORIES:
            out.append(f"info[{i}]/category '{v}' is not one of {', '.join(CATEGORIES)}")
    for v in (squash(el.text) for el in _children(info, "responseType")):
        if v and v not in rules.response_types:
            out.append(f"info[{i}]/responseType '{v}' is not one of {', '.join(rules.response_types)} "
                       f"in CAP {rules.version}")
    for j, res in enumerate(_children(info, "resource")):
        if not _text(res, "resourceDesc"):
            out.append(f"info[{i}]/resource[{j}]/resourceDesc is missing")
        if rules.resource_needs_mime_type and not _text(res, "mimeType"):
            out.append(f"info[{i}]/resource[{j}]/mimeType is missing (required in CAP 1.2)")
    return out


def _references(root: Element, msg_type: str | None) -> tuple[list[str] | None, list[str]]:
    """The ``sender,identifier,sent`` triples of <references> (None when absent),
    and the problems with them."""
    els = _children(root, "references")
    if not els:
        return None, []
    text = " ".join((el.text or "") for el in els)
    triples = text.split()
    if not triples:
        if msg_type in ("Update", "Cancel"):
            return None, [f"<references> is empty: an {msg_type} must name the message(s) it "
                          f"{'updates' if msg_type == 'Update' else 'cancels'} as sender,identifier,sent"]
        return None, []
    bad = []
    for t in triples:
        parts = t.split(",")
        if len(parts) != 3 or not parts[0] or not parts[1] or parse_instant(parts[2]) is None:
            bad.append(f"reference '{t}' is not sender,identifier,sent with sent a date-time")
    return triples, bad


def _by_language(infos: list[Element]) -> list[list[Element]]:
    """Infos grouped into warnings: the k-th info of each language together."""
    seen: dict[str, int] = {}
    groups: list[list[Element]] = []
    for info in infos:
        lang = (_text(info, "language") or "en-US").lower()
        k = seen.get(lang, 0)
        seen[lang] = k + 1
        if k == len(groups):
            groups.append([])
        groups[k].append(info)
    return groups


def _lang(info: Element) -> str:
    return _text(info, "language") or "en-US"


def _warning(group: list[Element], k: int, label: str, row_status: str, event_id: str, common: dict,
             rules: Rules, c: Collector) -> None:
    zh = [i for i in group if _lang(i).lower().startswith("zh")]
    en = [i for i in group if _lang(i).lower().startswith("en")]
    primary = (zh or en or group)[0]
    english = en[0] if en else None
    ordered = [primary] + ([english] if english is not None and english is not primary else [])
    ordered += [i for i in group if i not in ordered]
    where = f"warning #{k} ({', '.join(_lang(i) for i in group)})"
    raw = "".join(tostring(i, encoding="unicode") for i in group)

    signal = next((s for i in ordered if (s := _signal(i)) is not None), _OTHER)
    colour = None
    for i in ordered:
        colour = _colour(i, with_free_text=signal != _OTHER)
        if colour:
            break
    severity = _text(primary, "severity")
    all_clear = any(_text(i, "urgency") == "Past" or "AllClear" in _values(i, "responseType") for i in group)
    ending = all_clear or row_status == "cancelled"
    if colour is None:
        colour = SEVERITY_COLOUR.get(severity or "")
    if colour is None:
        if signal != _OTHER and not ending:
            c.reject(raw, f"{label} {where}: a {signal} signal, but no colour named in parameters, event "
                     f"or headline and severity '{severity}' gives none", f"{where}/severity")
            return
        colour = NO_COLOUR
    expires = None
    expires_text = next((t for i in ordered if (t := _text(i, "expires"))), None)
    if expires_text:
        expires = parse_instant(expires_text)
        if expires is None:
            c.reject(raw, f"{label} {where}: expires '{expires_text}' is not a date-time", f"{where}/expires")
            return
    others = {_lang(i): _texts(i) for i in ordered[1:] if i is not english}
    c.row(
        "warning",
        event_id=event_id,
        signal=signal,
        colour=colour,
        status="cancelled" if ending else row_status,
        expires=expires,
        language=_lang(primary),
        **_texts(primary),
        event_en=_text(english, "event") if english is not None else None,
        headline_en=_text(english, "headline") if english is not None else None,
        area_en=_area(english) if english is not None else None,
        texts=json.dumps(others, ensure_ascii=False, sort_keys=True) if others else None,
        category=_values(primary, "category"),
        severity=severity.lower() if severity else None,
        urgency=(_text(primary, "urgency") or "").lower() or None,
        certainty=rules.certainty.get(_text(primary, "certainty") or "", "").lower() or None,
        **common,
    )


def _values(info: Element, name: str) -> list[str]:
    return [v for el in _children(info, name) if (v := squash(el.text))]


def _area(info: Element) -> str | None:
    return "; ".join(a for area in _children(info, "area") if (a := _text(area, "areaDesc"))) or None


def _texts(info: Element) -> dict[str, str | None]:
    return {"event": _text(info, "event"), "headline": _text(info, "headline"), "area": _area(info)}


# --------------------------------------------------------------------------- meaning
def _signal(info: Element) -> str | None:
    """The signal the issuer coded (a WARNING_SIGNALS value or "other"), or
    None when neither codes, parameters nor the event name say."""
    for name, value in _pairs(info, "eventCode"):
        scheme = EVENT_CODES.get(name.strip().upper())
        if scheme is not None and value.strip().upper() in scheme:
            return scheme[value.strip().upper()]
    for name, value in _pairs(info, "parameter"):
        scheme = EVENT_PARAMETERS.get(name.strip().lower())
        code = value.partition(";")[0].strip()
        if scheme is not None and code in scheme:
            return scheme[code]
    event = _text(info, "event") or ""
    found = [(m.start(), sig) for sig, pat in SIGNAL_PATTERNS.items() if (m := pat.search(event))]
    return min(found)[1] if found else None


def _colour(info: Element, with_free_text: bool) -> str | None:
    """The colour the issuer named: in a colour/level parameter, then (for a
    Guangdong signal) in the event text and the headline."""
    texts = [v for n, v in _pairs(info, "parameter") if n.strip().lower() in COLOUR_PARAMETERS]
    if with_free_text:
        texts += [_text(info, "event"), _text(info, "headline")]
    for text in texts:
        if not text:
            continue
        matches = list(_COLOUR.finditer(_NOT_COLOUR.sub(" ", text)))
        if matches:
            last = matches[-1]
            return last.group(1).lower() if last.group(1) else _ZH_COLOUR[last.group(2)]
    return None
