"""Server-side access checks of the HTTP endpoints.

(No ``from __future__ import annotations`` here: FastAPI reads the
parameter annotations of dependencies at run time.)
"""
import hmac
import os

from fastapi import Depends, HTTPException, Request

from indicators.bus import names

INGEST_TOKEN_ENV = names.ENV_INGEST_TOKEN


def ingest_guard() -> list:
    """Dependencies of the HTTP ingest endpoint: a bearer token when
    SCENIC_TWIN_INGEST_TOKEN is set (compared in constant time).  Without it
    the endpoint is open, which is only acceptable on the default
    127.0.0.1 binding."""
    token = os.environ.get(INGEST_TOKEN_ENV)
    if not token:
        return []
    expected = f"Bearer {token}".encode()

    def check(request: Request) -> None:
        got = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(got, expected):
            raise HTTPException(401, f"ingest needs 'Authorization: Bearer <{INGEST_TOKEN_ENV}>'")
    return [Depends(check)]
