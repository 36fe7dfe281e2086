"""CAP warnings as issuers really send them: any hazard, in several languages,
updated and cancelled by reference, in CAP 1.1 or 1.2, signed or not.

Each rule is tested with a message written here for it; the OASIS examples in
``shared/testdata/cap`` (read through the ``td`` fixture, never copied) are
checked for every new column.  Messages go through the adapter and, where the
dead-letter store matters, through ``scenic-twin ingest`` as a user runs it.
"""
from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import XMLSigner, methods

from dashboard.cli import main
from indicators.alerts.compound import WarningSignal, fold_warnings
from indicators.feeds.adapters import Parsed, parse
from indicators.feeds.adapters import cap
from indicators.feeds.schemas import SCHEMAS

NS12 = "urn:oasis:names:tc:emergency:cap:1.2"
NS11 = "urn:oasis:names:tc:emergency:cap:1.1"
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=UTC)


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# --------------------------------------------------------------------------- writing messages
def info(event: str, *, lang: str | None = None, category: str = "Met", urgency: str = "Immediate",
         severity: str = "Severe", certainty: str = "Observed", headline: str | None = None,
         area: str = "海珠区", codes: tuple = (), params: tuple = (), response: tuple = (),
         extra: str = "") -> str:
    parts = [f"<language>{lang}</language>" if lang else "", f"<category>{category}</category>",
             f"<event>{event}</event>", "".join(f"<responseType>{r}</responseType>" for r in response),
             f"<urgency>{urgency}</urgency><severity>{severity}</severity><certainty>{certainty}</certainty>",
             "".join(f"<eventCode><valueName>{n}</valueName><value>{v}</value></eventCode>" for n, v in codes),
             f"<headline>{headline}</headline>" if headline else "",
             "".join(f"<parameter><valueName>{n}</valueName><value>{v}</value></parameter>" for n, v in params),
             extra, f"<area><areaDesc>{area}</areaDesc></area>"]
    return "<info>" + "".join(parts) + "</info>"


def alert(*infos: str, ident: str = "GZ-1", sender: str = "gz-meteo", sent: str = "2026-07-20T10:00:00+08:00",
          msg_type: str = "Alert", status: str = "Actual", references: str | None = None,
          ns: str = NS12) -> bytes:
    refs = "" if references is None else f"<references>{references}</references>"
    return (f'<?xml version="1.0" encoding="UTF-8"?><alert xmlns="{ns}"><identifier>{ident}</identifier>'
            f"<sender>{sender}</sender><sent>{sent}</sent><status>{status}</status>"
            f"<msgType>{msg_type}</msgType><scope>Public</scope>{refs}{''.join(infos)}</alert>").encode()


def checked(parsed: Parsed) -> Parsed:
    for kind, table in parsed.tables.items():
        assert table.schema.equals(SCHEMAS[kind]), kind
    for r in parsed.rejects:
        assert r.reason and r.where and "unexpectedly" not in r.reason, r
    return parsed


def rows(doc: bytes, **kw) -> list[dict]:
    parsed = checked(cap.parse(doc, **kw))
    assert parsed.rejects == [], parsed.rejects
    return parsed.tables["warning"].to_pylist()


def one(doc: bytes, **kw) -> dict:
    (row,) = rows(doc, **kw)
    return row


def rejected(doc: bytes, **kw) -> str:
    parsed = checked(cap.parse(doc, **kw))
    assert parsed.tables == {}, parsed.tables
    (r,) = parsed.rejects
    return r.reason


def ingest(capsys, var: Path, doc: bytes, name: str) -> tuple[int, dict]:
    """`scenic-twin ingest FILE --json` on a file written here."""
    path = var / name
    path.write_bytes(doc)
    try:
        code = main(["ingest", str(path), "--data", str(var), "--json"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 2
    out = capsys.readouterr().out
    return code, json.loads(out)


def dead_letters(var: Path) -> list[str]:
    with sqlite3.connect(var / "feeds" / "dead-letters.sqlite") as db:
        return [r[0] for r in db.execute("SELECT reason FROM dead_letters")]


# --------------------------------------------------------------------------- the OASIS samples
def test_oasis_thunderstorm_sample_gets_every_column(td):
    parsed = checked(parse((td / "cap/thunderstorm.cap.xml").read_bytes(), "cap"))
    (w,) = parsed.tables["warning"].to_pylist()
    assert (w["signal"], w["colour"], w["status"]) == ("thunderstorm_gale", "orange", "issued")
    assert w["event"] == "SEVERE THUNDERSTORM" and w["event_en"] == "SEVERE THUNDERSTORM"
    assert w["language"] == "en-US" and w["texts"] is None
    assert (w["category"], w["severity"], w["urgency"], w["certainty"]) == (["Met"], "severe", "immediate",
                                                                            "observed")
    assert w["cap_message"] == "KSTO@NWS.NOAA.GOV,KSTO1055887203,2003-06-17T14:57:00-07:00"
    assert w["references"] is None
    assert (w["signature"], w["cap_version"]) == ("unsigned", "1.2")


def test_oasis_security_advisory_is_a_generic_warning_not_a_dead_letter(td, capsys, tmp_path):
    """Not a weather signal, but an official warning: shown as "other"."""
    parsed = checked(parse((td / "cap/43b080713727.cap.xml").read_bytes(), "cap"))
    assert parsed.rejects == []
    (w,) = parsed.tables["warning"].to_pylist()
    assert (w["signal"], w["colour"]) == ("other", "orange")       # severity Severe
    assert w["event"] == "Homeland Security Advisory System Update"
    assert w["category"] == ["Security"] and w["headline"] == "Homeland Security Sets Code ORANGE"
    assert w["area"] == "U.S. nationwide and interests worldwide"
    code, r = ingest(capsys, tmp_path, (td / "cap/43b080713727.cap.xml").read_bytes(), "hsas.cap.xml")
    assert code == 0 and r["accepted"] == 1 and r["rejected_count"] == 0


# --------------------------------------------------------------------------- meaning, not substring
def test_a_tsunami_warning_for_cold_bay_is_no_cold_warning():
    doc = alert(info("Tsunami Warning", category="Geo", severity="Extreme",
                     headline="Tsunami warning for Cold Bay and Sand Point",
                     area="Cold Bay; Sand Point; 寒潮 Shelter Road",
                     params=(("WMOHEADER", "WEAK51 PAAQ"), ("NOTE", "Cold front passing; heavy rain"))))
    w = one(doc)
    assert (w["signal"], w["colour"]) == ("other", "red")
    assert w["event"] == "Tsunami Warning" and w["area"] == "Cold Bay; Sand Point; 寒潮 Shelter Road"


def test_a_known_event_code_decides_over_the_event_words():
    doc = alert(info("Tsunami Warning Cold Bay", category="Geo", codes=(("SAME", "TSW"),)))
    assert one(doc)["signal"] == "other"
    doc = alert(info("暴雨", codes=(("QWEATHER", "1003"),), headline="海珠区暴雨橙色预警"))
    assert (one(doc)["signal"], one(doc)["colour"]) == ("rainstorm", "orange")
    doc = alert(info("地质灾害", category="Geo", codes=(("QWEATHER", "1037"),)))
    assert one(doc)["signal"] == "other"
    doc = alert(info("Yellow warning", params=(("awareness_type", "4; fog"), ("awareness_level",
                                                                               "2; yellow; Moderate"))))
    assert (one(doc)["signal"], one(doc)["colour"]) == ("fog", "yellow")


@pytest.mark.parametrize("event, category, severity, colour", [
    ("Earthquake", "Geo", "Extreme", "red"),
    ("地震", "Geo", "Severe", "orange"),
    ("Flood Watch", "Met", "Moderate", "yellow"),
    ("Fire", "Fire", "Severe", "orange"),
    ("Tsunami Warning", "Geo", "Extreme", "red"),
    ("Thunderstorm", "Met", "Moderate", "yellow"),
    ("Civil Danger Warning", "Safety", "Unknown", "unknown"),
])
def test_hazards_that_are_no_guangdong_signal_are_generic_warnings(event, category, severity, colour):
    w = one(alert(info(event, category=category, severity=severity, headline="Red Cross shelters open")))
    assert (w["signal"], w["colour"], w["event"], w["category"]) == ("other", colour, event, [category])
    assert w["severity"] == severity.lower() and w["headline"] == "Red Cross shelters open"


def test_an_earthquake_reaches_the_log_not_the_dead_letter_store(capsys, tmp_path):
    doc = alert(info("Earthquake", category="Geo", severity="Extreme", area="Guangzhou"), ident="EQ-7")
    code, r = ingest(capsys, tmp_path, doc, "quake.cap.xml")
    assert code == 0 and r["accepted"] == 1 and r["rejected_count"] == 0
    assert dead_letters(tmp_path) == []


def test_a_guangdong_signal_without_any_colour_is_still_refused_with_its_reason():
    reason = rejected(alert(info("暴雨", severity="Unknown")))
    assert "rainstorm signal" in reason and "severity 'Unknown' gives none" in reason


# --------------------------------------------------------------------------- lifecycle
def fold(*docs: bytes, current=None) -> dict[str, WarningSignal]:
    out = dict(current or {})
    for doc in docs:
        out = fold_warnings(out, rows(doc), NOW)
    return out


FIRST = alert(info("暴雨", headline="广州市暴雨黄色预警信号", severity="Moderate"), ident="RS-1")
FIRST_REF = "gz-meteo,RS-1,2026-07-20T10:00:00+08:00"


def test_an_all_clear_after_an_alert_ends_it():
    assert fold(FIRST)["rainstorm"].colour == "yellow"
    clear = alert(info("暴雨", urgency="Past", severity="Minor", headline="暴雨预警解除"), ident="RS-2",
                  sent="2026-07-20T11:00:00+08:00", msg_type="Update", references=FIRST_REF)
    row = one(clear)
    assert row["status"] == "cancelled" and row["references"] == [FIRST_REF]
    assert fold(FIRST, clear) == {}


def test_an_all_clear_needs_no_colour():
    clear = alert(info("暴雨", urgency="Past", severity="Unknown", headline="暴雨预警解除"), ident="RS-5",
                  msg_type="Cancel", references=FIRST_REF)
    row = one(clear)
    assert (row["signal"], row["colour"], row["status"]) == ("rainstorm", "unknown", "cancelled")
    assert fold(FIRST, clear) == {}


def test_a_cancel_without_info_ends_the_generic_warning_it_references():
    quake = alert(info("Earthquake", category="Geo"), ident="EQ-1", sender="cenc")
    assert list(fold(quake)) == ["other:cenc,EQ-1"]
    cancel = alert(ident="EQ-2", sender="cenc", sent="2026-07-20T10:30:00+08:00", msg_type="Cancel",
                   references="cenc,EQ-1,2026-07-20T10:00:00+08:00")
    row = one(cancel)
    assert (row["signal"], row["status"]) == ("other", "cancelled")
    assert fold(quake, cancel) == {}


def test_an_update_replaces_the_warning_it_references():
    upd = alert(info("暴雨", headline="广州市暴雨橙色预警信号"), ident="RS-3", sent="2026-07-20T10:40:00+08:00",
                msg_type="Update", references=FIRST_REF)
    (w,) = fold(FIRST, upd).values()
    assert (w.signal, w.colour, w.event_id, w.message) == ("rainstorm", "orange", "gz-meteo/RS-3#0", "gz-meteo,RS-3")
    tsunami = alert(info("Tsunami Warning", category="Geo"), ident="TS-1", sender="ptwc")
    moved = alert(info("Tsunami Warning", category="Geo", severity="Extreme", area="Pearl River estuary"),
                  ident="TS-2", sender="ptwc", sent="2026-07-20T10:20:00+08:00", msg_type="Update",
                  references="ptwc,TS-1,2026-07-20T10:00:00+08:00")
    assert list(fold(tsunami, moved)) == ["other:ptwc,TS-2"]


def test_a_cancel_of_another_message_leaves_an_active_signal_alone():
    other_district = alert(info("暴雨", headline="黄埔区暴雨黄色预警"), ident="HP-9", msg_type="Cancel",
                           sent="2026-07-20T10:10:00+08:00", references="hp-meteo,HP-1,2026-07-20T09:00:00+08:00")
    assert fold(FIRST, other_district)["rainstorm"].event_id == "gz-meteo/RS-1#0"
    # …but a signal restored without its message (state from before CAP lifecycle) is ended
    restored = {"rainstorm": WarningSignal("rainstorm", "yellow", utc(2026, 7, 20, 1))}
    assert fold(other_district, current=restored) == {}


@pytest.mark.parametrize("msg_type", ["Update", "Cancel"])
def test_empty_references_are_a_validation_problem_kept_as_a_dead_letter(msg_type, capsys, tmp_path):
    doc = alert(info("暴雨", headline="暴雨橙色预警"), ident="RS-4", msg_type=msg_type, references="")
    assert f"<references> is empty: an {msg_type} must name" in rejected(doc)
    code, r = ingest(capsys, tmp_path, doc, "empty-refs.cap.xml")
    assert code == 1 and r["accepted"] == 0 and r["rejected_count"] == 1
    assert any("<references> is empty" in reason for reason in dead_letters(tmp_path))


def test_a_reference_that_is_no_triple_is_refused():
    doc = alert(info("暴雨"), msg_type="Update", references="gz-meteo,RS-1")
    assert "reference 'gz-meteo,RS-1' is not sender,identifier,sent" in rejected(doc)


# --------------------------------------------------------------------------- languages
def test_a_bilingual_alert_is_one_warning_with_both_texts():
    doc = alert(info("Rainstorm", lang="en-US", headline="Rainstorm Orange Signal", area="Haizhu District"),
                info("暴雨", lang="zh-CN", headline="暴雨橙色预警信号", area="海珠区"))
    parsed = checked(cap.parse(doc))
    assert parsed.rejects == []
    (w,) = parsed.tables["warning"].to_pylist()
    assert (w["signal"], w["colour"], w["language"]) == ("rainstorm", "orange", "zh-CN")
    assert (w["event"], w["headline"], w["area"]) == ("暴雨", "暴雨橙色预警信号", "海珠区")
    assert (w["event_en"], w["headline_en"], w["area_en"]) == ("Rainstorm", "Rainstorm Orange Signal",
                                                               "Haizhu District")
    assert w["texts"] is None and w["event_id"] == "gz-meteo/GZ-1#0"


def test_further_languages_go_to_the_texts_column_and_sequences_stay_apart():
    doc = alert(info("台风", lang="zh-CN", headline="八号风球"), info("Typhoon", lang="en", headline="Signal 8"),
                info("Tufão", lang="pt-PT", headline="Sinal 8", area="Macau"),
                info("暴雨", lang="zh-CN", headline="暴雨红色预警"), info("Rainstorm", lang="en", headline="Red"))
    first, second = rows(doc)
    assert (first["signal"], second["signal"]) == ("typhoon", "rainstorm")
    assert json.loads(first["texts"]) == {"pt-PT": {"event": "Tufão", "headline": "Sinal 8", "area": "Macau"}}
    assert second["texts"] is None and (second["event_en"], second["colour"]) == ("Rainstorm", "red")
    assert [first["event_id"], second["event_id"]] == ["gz-meteo/GZ-1#0", "gz-meteo/GZ-1#1"]


# --------------------------------------------------------------------------- CAP 1.1
def test_cap_1_1_is_read_with_its_own_rules():
    very_likely = info("Typhoon", certainty="Very Likely", headline="Typhoon signal no. 3")
    w = one(alert(very_likely, ns=NS11))
    assert (w["cap_version"], w["certainty"], w["signal"]) == ("1.1", "likely", "typhoon")
    assert "certainty 'Very Likely' is not one of" in rejected(alert(very_likely, ns=NS12))
    no_mime = info("Typhoon", extra="<resource><resourceDesc>map</resourceDesc></resource>")
    assert one(alert(no_mime, ns=NS11))["cap_version"] == "1.1"
    assert "resource[0]/mimeType is missing (required in CAP 1.2)" in rejected(alert(no_mime, ns=NS12))


def test_all_clear_response_type_is_1_2_only():
    clear = info("Typhoon", response=("AllClear",), urgency="Immediate")
    assert one(alert(clear, ns=NS12))["status"] == "cancelled"
    reason = rejected(alert(clear, ns=NS11))
    assert "is not valid CAP 1.1" in reason and "responseType 'AllClear'" in reason


def test_cap_1_1_drafts_are_noted_not_loaded():
    parsed = checked(cap.parse(alert(info("Typhoon"), ns=NS11, status="Draft")))
    assert parsed.tables == {} and parsed.rejects == []
    assert any("status 'Draft'" in n for n in parsed.notes)


# --------------------------------------------------------------------------- signatures
def certificate(name: str):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert


@pytest.fixture(scope="module")
def signer():
    return certificate("Guangzhou Meteorological Observatory (test)")


def signed(doc: bytes, signer) -> bytes:
    key, cert = signer
    root = XMLSigner(method=methods.enveloped, signature_algorithm="rsa-sha256",
                     digest_algorithm="sha256").sign(
        etree.fromstring(doc),
        key=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
        cert=cert.public_bytes(serialization.Encoding.PEM))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def trust_store(folder: Path, *certs) -> Path:
    folder.mkdir()
    for i, (_, cert) in enumerate(certs):
        (folder / f"signer-{i}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return folder


SIGNAL = alert(info("暴雨", headline="广州市暴雨红色预警信号"), ident="SIG-1")


def test_a_valid_signature_from_the_trust_store_is_verified(signer, tmp_path, monkeypatch):
    doc = signed(SIGNAL, signer)
    store = trust_store(tmp_path / "trust", signer)
    w = one(doc, trust=store)
    assert (w["signature"], w["signal"], w["colour"]) == ("verified", "rainstorm", "red")
    monkeypatch.setenv(cap.TRUST_SETTING, str(store))
    assert one(doc)["signature"] == "verified"


def test_a_tampered_signature_is_refused_and_dead_lettered(signer, tmp_path, capsys, monkeypatch):
    store = trust_store(tmp_path / "trust", signer)
    tampered = signed(SIGNAL, signer).replace("红色".encode(), "蓝色".encode())
    reason = rejected(tampered, trust=store)
    assert "changed after signing" in reason and "tampered" in reason
    var = tmp_path / "var"
    var.mkdir()
    monkeypatch.setenv(cap.TRUST_SETTING, str(store))
    code, r = ingest(capsys, var, tampered, "tampered.cap.xml")
    assert code != 0 and r["accepted"] == 0 and "tampered" in r["rejected"][0]["reason"]
    assert any("tampered" in reason for reason in dead_letters(var))


def test_a_signature_from_outside_the_trust_store_is_marked_signed_not_verified(signer, tmp_path):
    doc = signed(SIGNAL, signer)
    store = trust_store(tmp_path / "trust", certificate("someone else"))
    parsed = checked(cap.parse(doc, trust=store))
    assert parsed.tables["warning"].column("signature").to_pylist() == ["signed"]
    assert any("not in the trust store" in n for n in parsed.notes)
    assert "accepts only messages with a verified signature" in rejected(doc, trust=store, signed_only=True)


def test_unsigned_messages_are_accepted_unless_their_source_requires_signatures(monkeypatch):
    assert one(SIGNAL)["signature"] == "unsigned"
    monkeypatch.setenv(cap.SIGNED_ONLY_SETTING, "gz-meteo-cap, cma-cap")
    assert one(SIGNAL, source="other-feed")["signature"] == "unsigned"
    assert "is unsigned, and source 'gz-meteo-cap' accepts only" in rejected(SIGNAL, source="gz-meteo-cap")


def test_a_signal_sent_before_the_one_held_but_delivered_after_it_changes_nothing():
    """Out of order across batches (two feeds, a retry): the red rainstorm signal is held; the
    yellow one sent a minute earlier arrives next.  It must not downgrade the control room to
    yellow, nor may an old cancel end the red one; a newer update or cancel still does, and an
    old message of another signal still counts."""
    t0 = dt.datetime(2026, 6, 1, 2, 0, tzinfo=dt.timezone.utc)

    def row(eid, minute, signal, colour, status="issued"):
        return {"event_id": eid, "event_time": t0 + dt.timedelta(minutes=minute), "signal": signal,
                "colour": colour, "status": status}

    now = t0 + dt.timedelta(minutes=10)
    held = fold_warnings({}, [row("r2", 5, "rainstorm", "red")], now)
    late = fold_warnings(held, [row("r1", 4, "rainstorm", "yellow", "updated"), row("c0", 3, "rainstorm", "", "cancelled"),
                                row("f1", 2, "fog", "blue")], now)
    assert {k: w.colour for k, w in late.items()} == {"rainstorm": "red", "fog": "blue"}
    newer = fold_warnings(late, [row("r3", 6, "rainstorm", "orange", "updated")], now)
    assert newer["rainstorm"].colour == "orange"
    assert "rainstorm" not in fold_warnings(newer, [row("c1", 7, "rainstorm", "", "cancelled")], now)
