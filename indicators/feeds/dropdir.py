"""Drop-directory front end: ingest files that other systems put in a folder.

Layout under ``path``::

    incoming/   files to ingest (write them under a temporary name - a leading
                '.' or a '.part' / '.tmp' suffix - and rename when complete;
                such names are not picked up)
    done/       files that were ingested (possibly with some rejected records,
                then with a ``<name>.reason.txt`` listing them)
    rejected/   files that could not be ingested at all, or whose records were
                all rejected, each with ``<name>.reason.txt``

Formats: ``.jsonl`` / ``.ndjson`` (JSON lines; every line names its ``kind``),
``.arrow`` / ``.arrows`` / ``.feather`` (Arrow IPC file or stream) and
``.parquet``.  For Arrow and Parquet the kind comes from the schema metadata key
``scenic_twin.kind`` or the file-name prefix ``<kind>-…``.  Any other file
goes through the optional ``parse(data, filename)`` callable, which returns an
adapter result (``.tables`` + ``.rejects``).

A crash between ingesting and moving a file makes the next scan ingest it
again; the ingestor's de-duplication by ``event_id`` makes that harmless.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from .ingest import Ingestor, Receipt
from .schemas import SCHEMAS
from .validate import PARSE_ERROR, UNKNOWN_KIND, BadRecord, to_raw

__all__ = ["DropDir", "FileResult", "KIND_METADATA_KEY"]

log = logging.getLogger(__name__)

KIND_METADATA_KEY = b"scenic_twin.kind"
_JSONL = {".jsonl", ".ndjson"}
_ARROW = {".arrow", ".arrows", ".feather", ".ipc"}
_PARQUET = {".parquet", ".pq"}
_REASON_LINES = 1000


@dataclass
class FileResult:
    """Outcome of one file of a scan."""

    name: str
    status: str                      # "done" | "rejected"
    moved_to: Path
    receipt: Receipt | None = None
    reason: str | None = None


class _FileRejected(Exception):
    pass


def _kind_from(schema: pa.Schema, name: str) -> str:
    meta = schema.metadata or {}
    k = meta.get(KIND_METADATA_KEY)
    if k is not None:
        kind = k.decode("utf-8", "replace")
        if kind not in SCHEMAS:
            raise _FileRejected(f"schema metadata {KIND_METADATA_KEY.decode()} = {kind!r} is not a known feed kind")
        return kind
    prefix = name.split("-", 1)[0] if "-" in name else ""
    if prefix in SCHEMAS:
        return prefix
    raise _FileRejected(
        f"cannot tell the feed kind: no schema metadata {KIND_METADATA_KEY.decode()!r} and the file name "
        f"does not start with '<kind>-' (kinds: {', '.join(SCHEMAS)})")


def _read_arrow(data: bytes) -> pa.Table:
    errors = []
    try:
        table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
        table.validate(full=True)
        return table
    except Exception as e:  # not the file format: try the stream format
        errors.append(f"{type(e).__name__}: {str(e)[:120]}")
    try:
        table = pa.ipc.open_stream(pa.BufferReader(data)).read_all()
        table.validate(full=True)
        return table
    except Exception as e:
        errors.append(f"{type(e).__name__}: {str(e)[:120]}")
    raise _FileRejected("not an Arrow IPC file or stream (" + "; ".join(errors) + ")")


def _read_parquet(data: bytes) -> pa.Table:
    try:
        table = pq.read_table(pa.BufferReader(data))
        table.validate(full=True)
        return table
    except Exception as e:
        raise _FileRejected(f"not a readable Parquet file ({type(e).__name__}: {str(e)[:200]})") from None


class DropDir:
    """Scan ``path/incoming`` and ingest what is there (see module doc)."""

    def __init__(self, path: str | os.PathLike[str], ingestor: Ingestor,
                 parse: Callable[[bytes, str], Any] | None = None, *, source: str = "dropdir") -> None:
        self.path = Path(path)
        self.ingestor = ingestor
        self.parse = parse
        self.source = source
        self.incoming = self.path / "incoming"
        self.done = self.path / "done"
        self.rejected = self.path / "rejected"
        for d in (self.incoming, self.done, self.rejected):
            d.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _ready(p: Path) -> bool:
        n = p.name
        return p.is_file() and not n.startswith(".") and not n.endswith((".part", ".tmp"))

    def scan_once(self) -> list[FileResult]:
        """Ingest every complete file now in ``incoming/``, oldest name first."""
        results = []
        for p in sorted(self.incoming.iterdir()):
            if not self._ready(p):
                continue
            results.append(self._one(p))
        return results

    def _one(self, p: Path) -> FileResult:
        name = p.name
        source = f"{self.source}:{name}"[:200]
        receipt: Receipt | None = None
        data = b""
        try:
            try:
                data = p.read_bytes()
            except OSError as e:
                raise _FileRejected(f"cannot read the file ({e})") from None
            receipt = self._ingest(data, name, source)
        except _FileRejected as e:
            self._dead_letter_file(p.name, data, str(e), source)
            return self._finish(p, "rejected", str(e), None)
        taken = receipt.accepted + receipt.duplicates + receipt.late
        if receipt.rejected and not taken:
            return self._finish(p, "rejected", f"all {len(receipt.rejected)} records were rejected", receipt)
        if receipt.rejected:
            return self._finish(p, "done", f"{len(receipt.rejected)} of {receipt.received} records were rejected",
                                receipt)
        return self._finish(p, "done", None, receipt)

    def _dead_letter_file(self, name: str, data: bytes, reason: str, source: str) -> None:
        """Count a file rejected as a whole in the dead-letter store too (the
        file itself is kept in ``rejected/``)."""
        code = UNKNOWN_KIND if "kind" in reason else PARSE_ERROR
        self.ingestor.reject([BadRecord("(file)", to_raw(data[:3000]), f"file {name!r}: {reason}", -1, code,
                                        f"dropdir:{name}")], source=source)

    def _ingest(self, data: bytes, name: str, source: str) -> Receipt:
        suffix = Path(name).suffix.lower()
        if suffix in _JSONL:
            return self.ingestor.submit_ndjson(data, kind=None, source=source)
        if suffix in _ARROW or suffix in _PARQUET:
            table = _read_arrow(data) if suffix in _ARROW else _read_parquet(data)
            kind = _kind_from(table.schema, name)
            return self.ingestor.submit(kind, table, source=source)
        if self.parse is None:
            raise _FileRejected(f"unsupported file type {suffix or '(none)'!r} and no parser configured")
        try:
            parsed = self.parse(data, name)
        except Exception as e:  # a parser failing on a file is a bad file, not a crash
            raise _FileRejected(f"the parser failed ({type(e).__name__}: {str(e)[:300]})") from None
        if not hasattr(parsed, "tables") or not hasattr(parsed, "rejects"):
            raise _FileRejected(f"the parser returned {type(parsed).__name__}, not a result with .tables/.rejects")
        return self.ingestor.submit_parsed(parsed, source=source)

    def _finish(self, p: Path, status: str, reason: str | None, receipt: Receipt | None) -> FileResult:
        target_dir = self.done if status == "done" else self.rejected
        dest = target_dir / p.name
        k = 1
        while dest.exists():
            dest = target_dir / f"{p.name}.{k}"
            k += 1
        if reason is not None:
            lines = [reason]
            if receipt is not None:
                lines.append(f"accepted={receipt.accepted} duplicates={receipt.duplicates} late={receipt.late} "
                             f"rejected={len(receipt.rejected)}")
                for b in receipt.rejected[:_REASON_LINES]:
                    lines.append(f"{b.where or b.index}\t{b.kind}\t{b.code}\t{b.reason}")
                if len(receipt.rejected) > _REASON_LINES:
                    lines.append(f"... and {len(receipt.rejected) - _REASON_LINES} more (see the dead-letter store)")
            txt = dest.with_name(dest.name + ".reason.txt")
            tmp = txt.with_name("." + txt.name + ".tmp")
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(tmp, txt)
        os.replace(p, dest)
        if status == "rejected":
            log.warning("drop dir: rejected %s: %s", p.name, reason)
        return FileResult(p.name, status, dest, receipt, reason)
