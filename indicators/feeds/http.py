"""HTTP front end of the :class:`~indicators.feeds.ingest.Ingestor` (FastAPI).

``make_ingest_router(ingestor)`` returns an ``APIRouter`` with

* ``POST /ingest/{kind}`` - body ``application/x-ndjson`` (one JSON record per
  line) or ``application/vnd.apache.arrow.stream`` (an Arrow IPC stream);
* ``POST /ingest`` - JSON lines where each line names its ``kind``;
* ``GET /ingest/stats`` - the ingestor's counters and the dead-letter counts.

Responses (JSON, the receipt: ``accepted``, ``duplicates``, ``late``,
``seq``, ``rejected`` = every rejection with ``index`` (0-based line number,
or row number for Arrow) and ``reason``):

* 200 nothing was rejected (duplicates and late events are not errors);
* 207 some records were rejected, some were taken;
* 422 everything was rejected, or the body cannot be parsed at all;
* 404 unknown kind, 415 unsupported content type, 413 body over the limit
  (32 MiB by default; checked on ``Content-Length`` and while streaming);
* 507 the state folder's disk is full: nothing of the request was stored, send it again later.

Bad input never yields a 500: garbage is rejected record by record.  The
sending system is taken from the ``X-Feed-Source`` header or the ``source``
query parameter (default ``"http"``).  The blocking work (validation, fsync)
runs in the thread pool.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from .ingest import Ingestor, Receipt, read_arrow_stream
from .schemas import SCHEMAS
from .validate import PARSE_ERROR, BadRecord, to_raw

__all__ = ["make_ingest_router", "MAX_BODY", "NDJSON_TYPES", "ARROW_TYPES"]

MAX_BODY = 32 * 1024 * 1024
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                          "application/x-jsonlines", "application/jsonlines"})
ARROW_TYPES = frozenset({"application/vnd.apache.arrow.stream"})


class _TooLarge(Exception):
    pass


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _TooLarge
        except ValueError:
            pass                      # a bogus header: rely on the streamed count
    parts: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _TooLarge
        parts.append(chunk)
    return b"".join(parts)


def _status(receipt: Receipt) -> int:
    if not receipt.rejected:
        return 200
    if receipt.accepted or receipt.duplicates or receipt.late:
        return 207
    return 422


def _respond(receipt: Receipt) -> JSONResponse:
    return JSONResponse(receipt.to_dict(), status_code=_status(receipt))


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def disk_full(e: BaseException) -> bool:
    """An error that means the disk (or the quota) is full: OSError ENOSPC/EDQUOT, or SQLite's own."""
    import errno
    import sqlite3
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(e, sqlite3.OperationalError) and "full" in str(e).lower()


def _full(folder) -> JSONResponse:
    import shutil
    try:
        free = shutil.disk_usage(folder).free
        where = f"{free / 1e6:.1f} MB free"
    except OSError:
        where = "free space unknown"
    return _error(507, f"the disk of the state folder is full ({where}); this request was not stored: "
                       "free space (or move the state folder) and send it again", retry=True)


def make_ingest_router(ingestor: Ingestor, *, max_body: int = MAX_BODY) -> APIRouter:
    """Router with the ingest endpoints bound to ``ingestor``."""
    router = APIRouter(tags=["ingest"])

    def source_of(request: Request) -> str:
        return (request.headers.get("x-feed-source") or request.query_params.get("source") or "http")[:200]

    def too_large() -> JSONResponse:
        return _error(413, f"body larger than {max_body} bytes; split it into several requests")

    @router.get("/ingest/stats")
    async def ingest_stats() -> JSONResponse:
        counts = await run_in_threadpool(ingestor.dead.counts)
        return JSONResponse({
            "ingested": ingestor.stats(),
            "dead_letters": [{"kind": k, "code": c, "count": n} for (k, c), n in sorted(counts.items())],
        })

    folder = getattr(getattr(ingestor, "log", None), "directory", None) or "the state folder"

    @router.post("/ingest/{kind}")
    async def ingest_kind(kind: str, request: Request) -> JSONResponse:
        try:
            return await _ingest_kind(kind, request)
        except Exception as e:              # a full disk is the sender's 507, anything else a bug (500)
            if disk_full(e):
                return _full(folder)
            raise

    async def _ingest_kind(kind: str, request: Request) -> JSONResponse:
        if kind not in SCHEMAS:
            return _error(404, f"unknown feed kind {kind[:60]!r}", known=list(SCHEMAS))
        ctype = _media_type(request)
        if ctype not in NDJSON_TYPES and ctype not in ARROW_TYPES:
            return _error(415, f"content type {ctype or '(none)'!r} is not accepted",
                          accepted=sorted(NDJSON_TYPES | ARROW_TYPES))
        try:
            body = await _read_body(request, max_body)
        except _TooLarge:
            return too_large()
        source = source_of(request)
        if ctype in ARROW_TYPES:
            try:
                table = await run_in_threadpool(read_arrow_stream, body)
            except ValueError as e:
                bad = BadRecord(kind, to_raw(body[:3000]), str(e), 0, PARSE_ERROR, "body")
                await run_in_threadpool(lambda: ingestor.reject([bad], source=source))
                return _respond(Receipt(0, 0, 0, [bad], None))
            receipt = await run_in_threadpool(lambda: ingestor.submit(kind, table, source=source))
        else:
            receipt = await run_in_threadpool(lambda: ingestor.submit_ndjson(body, kind=kind, source=source))
        return _respond(receipt)

    @router.post("/ingest")
    async def ingest_mixed(request: Request) -> JSONResponse:
        try:
            return await _ingest_mixed(request)
        except Exception as e:
            if disk_full(e):
                return _full(folder)
            raise

    async def _ingest_mixed(request: Request) -> JSONResponse:
        ctype = _media_type(request)
        if ctype not in NDJSON_TYPES:
            return _error(415, f"content type {ctype or '(none)'!r} is not accepted here; "
                               "POST /ingest takes JSON lines with a 'kind' field "
                               "(Arrow streams go to /ingest/{kind})",
                          accepted=sorted(NDJSON_TYPES))
        try:
            body = await _read_body(request, max_body)
        except _TooLarge:
            return too_large()
        source = source_of(request)
        receipt = await run_in_threadpool(lambda: ingestor.submit_ndjson(body, kind=None, source=source))
        return _respond(receipt)

    return router
