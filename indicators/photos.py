"""Photos taken by patrol phones for a report or a handled case.

A phone uploads the bytes; :meth:`PhotoStore.put` keeps them only if they are
one plain image and nothing else:

* at most ``MAX_BYTES`` and ``MAX_PIXELS`` (a small file may decode to a huge
  bitmap: a decompression bomb);
* a JPEG, PNG or WebP by its first bytes *and* by a full decode (Pillow), not by
  the name or the Content-Type the phone claims;
* no bytes after the image's own end (a ZIP, an HTML page or a script appended
  to a valid image makes a *polyglot* that another program would read as
  that), and no markup or script inside it (e.g. in a JPEG comment);
* then re-encoded: the stored file holds pixels only - no EXIF (a phone's GPS
  position and serial number stay on the phone), no comments.

Files are stored outside the database, named by the SHA-256 of the stored
bytes (``<sha>.jpg``), written atomically (temp file, fsync, rename): a crash
leaves the old state or the new file, never half a photo.  A case keeps the
checksum; :meth:`get` checks it again on the way out.
"""
from __future__ import annotations

import hashlib
import io
import re
import warnings
from pathlib import Path

from twin_assets.fsio import atomic_write

MAX_BYTES = 8 * 1024 * 1024            # a phone photo at full resolution is 2-6 MB
MAX_PIXELS = 50_000_000                # a 50-megapixel camera; more is a bomb, not a photo
STORED_MAX_SIDE = 2048                 # enough to see a broken lamp; a quarter of the bytes
_SHA = re.compile(r"^[0-9a-f]{64}$")
_MARKUP = re.compile(rb"<\s*(script|html|svg|iframe|body|\?php|object|embed)\b|javascript:", re.I)


class PhotoError(ValueError):
    """The upload is not a photo we keep; the message says why (for the phone)."""


def _kind(b: bytes) -> str | None:
    if b[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if b[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
        return "webp"
    return None


def _image_end(b: bytes, kind: str) -> int:
    """Where the image's own bytes end (the rest would be a polyglot's other half)."""
    if kind == "png":
        i = b.find(b"IEND")
        return -1 if i < 0 else i + 8                        # type + CRC
    if kind == "webp":
        return 8 + int.from_bytes(b[4:8], "little")
    # JPEG: walk the segments to the scan, then to the end-of-image marker after it
    i = 2
    n = len(b)
    while i + 4 <= n:
        if b[i] != 0xFF:
            return -1
        marker = b[i + 1]
        if marker == 0xD9:
            return i + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        length = int.from_bytes(b[i + 2:i + 4], "big")
        if marker == 0xDA:                                   # start of scan: entropy-coded data follows
            j = i + 2 + length
            while True:
                j = b.find(b"\xff", j)
                if j < 0 or j + 1 >= n:
                    return -1
                m = b[j + 1]
                if m == 0x00 or 0xD0 <= m <= 0xD7 or m == 0xFF:
                    j += 1 if m == 0xFF else 2
                    continue
                if m == 0xD9:
                    return j + 2
                i = j                                        # another segment (progressive JPEG)
                break
            continue
        i += 2 + length
    return -1


class PhotoStore:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def check(self, data: bytes) -> str:
        """The image kind of ``data``, or :class:`PhotoError` saying what is wrong."""
        if not data:
            raise PhotoError("the upload is empty")
        if len(data) > MAX_BYTES:
            raise PhotoError(f"the photo is {len(data) / 1e6:.1f} MB; at most {MAX_BYTES // (1024 * 1024)} MB")
        kind = _kind(data)
        if kind is None:
            raise PhotoError("not a photo: only JPEG, PNG or WebP images are taken")
        end = _image_end(data, kind)
        if end < 0:
            raise PhotoError(f"the {kind.upper()} image is cut short or damaged")
        if data[end:].strip(b"\x00"):
            raise PhotoError(f"the file carries {len(data) - end} bytes after the image ends "
                             "(an image joined to another file): not taken")
        if _MARKUP.search(data):
            raise PhotoError("the image carries markup or script inside it: not taken")
        return kind

    def put(self, data: bytes) -> str:
        """Check, re-encode and store a photo; returns its SHA-256 (the stored file's)."""
        from PIL import Image

        kind = self.check(data)
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)       # a refusal, not a warning
                im = Image.open(io.BytesIO(data))
            with im:
                if im.format is None or im.format.lower() != kind:
                    raise PhotoError(f"the bytes say {kind.upper()} but decode as {im.format}: not taken")
                if im.width * im.height > MAX_PIXELS:
                    raise PhotoError(f"the photo has {im.width}×{im.height} pixels; at most {MAX_PIXELS:,}")
                im.load()
                rgb = im.convert("RGB")
        except PhotoError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PhotoError(f"the photo has more than {MAX_PIXELS:,} pixels: not taken") from None
        except Exception as e:           # Pillow raises many kinds for broken images
            raise PhotoError(f"the {kind.upper()} image cannot be read ({type(e).__name__})") from None
        rgb.thumbnail((STORED_MAX_SIDE, STORED_MAX_SIDE))
        out = io.BytesIO()
        rgb.save(out, "JPEG", quality=85)
        body = out.getvalue()
        sha = hashlib.sha256(body).hexdigest()
        path = self.folder / f"{sha}.jpg"
        if not path.exists():
            atomic_write(path, lambda tmp: Path(tmp).write_bytes(body))
        return sha

    @staticmethod
    def valid_name(sha: object) -> bool:
        return isinstance(sha, str) and bool(_SHA.match(sha))

    def exists(self, sha: str) -> bool:
        return isinstance(sha, str) and bool(_SHA.match(sha)) and (self.folder / f"{sha}.jpg").exists()

    def get(self, sha: str) -> bytes:
        """The stored photo, its checksum checked; :class:`PhotoError` when missing or damaged."""
        if not isinstance(sha, str) or not _SHA.match(sha):
            raise PhotoError("a photo is named by its SHA-256 (64 hex digits)")
        path = self.folder / f"{sha}.jpg"
        if not path.exists():
            raise PhotoError(f"no photo {sha}")
        body = path.read_bytes()
        if hashlib.sha256(body).hexdigest() != sha:
            raise PhotoError(f"photo {sha} is damaged on disk (checksum differs)")
        return body


__all__ = ["MAX_BYTES", "MAX_PIXELS", "PhotoError", "PhotoStore"]
