"""The page works offline: pinned bundles, no CDN, nothing fetched from outside."""
import hashlib
import re
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "dashboard" / "assets" / "vendor"


def test_vendored_bundles_match_their_pinned_checksums():
    sums = dict(reversed(line.split()) for line in (VENDOR / "SHA256SUMS").read_text().splitlines())
    assert sums, "SHA256SUMS is empty"
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_our_scripts_reference_no_remote_url():
    ours = [p for p in (VENDOR.parent).rglob("*") if p.suffix in (".js", ".css") and "deck.gl-" not in p.name]
    assert ours
    # XML namespace names (createElementNS) are identifiers, never fetched
    namespaces = ("http://www.w3.org/2000/svg",)
    for p in ours:
        text = p.read_text()
        for ns in namespaces:
            text = text.replace(f'"{ns}"', '""')
        assert not re.search(r"https?://", text), p
