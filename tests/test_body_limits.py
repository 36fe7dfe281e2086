"""Every door bounded, against the real server (issue 16): five 200 MB callback bodies in parallel
are refused with 413 after the first MiB, the server's memory does not follow them (< 50 MB
growth), and it keeps answering others meanwhile."""
from __future__ import annotations

import re
import socket
import threading
import urllib.parse

import httpx

from dashboard import auth

CHUNK = b"x" * (1 << 20)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read())[1]) / 1024


def _session(base) -> str:
    with httpx.Client(base_url=base, follow_redirects=False) as c:
        page = c.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
        r = c.post("/login", data={"username": base.user, "password": base.password, "csrf": csrf, "next": "/wall"},
                   headers={"origin": base})
        assert r.status_code == 303, r.text[:300]
        return c.cookies[auth.COOKIE]


def _huge_post(base, cookie: str, size_mb: int, out: list, path: str = "/_dash-update-component") -> None:
    """Send a ``size_mb`` MB body the way an attacker would: declared up front, streamed; record
    the status the server answered (it may stop reading and close early)."""
    u = urllib.parse.urlsplit(base)
    s = socket.create_connection((u.hostname, u.port), timeout=60)
    head = (f"POST {path} HTTP/1.1\r\nHost: {u.netloc}\r\nOrigin: {base}\r\n"
            f"Cookie: {auth.COOKIE}={cookie}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size_mb << 20}\r\nConnection: close\r\n\r\n").encode()
    try:
        s.sendall(head)
        for _ in range(size_mb):
            s.sendall(CHUNK)
    except OSError:
        pass                                  # the server stopped reading: its answer is waiting
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except OSError:
        pass
    s.close()
    m = re.match(rb"HTTP/1\.1 (\d{3})", data)
    out.append(int(m[1]) if m else None)


def test_five_200_mb_callback_bodies_get_413_and_the_memory_stays(server):
    cookie = _session(server)
    before = _rss_mb(server.pid)
    statuses: list = []
    threads = [threading.Thread(target=_huge_post, args=(server, cookie, 200, statuses)) for _ in range(5)]
    for t in threads:
        t.start()
    peak = before
    answered = 0
    while any(t.is_alive() for t in threads):
        peak = max(peak, _rss_mb(server.pid))
        answered += httpx.get(server + "/healthz", timeout=30).status_code == 200
        for t in threads:
            t.join(0.2)
    peak = max(peak, _rss_mb(server.pid))
    assert statuses == [413] * 5, statuses
    assert peak - before < 50, f"server RSS {before:.0f} -> {peak:.0f} MB"
    assert answered >= 1                        # others were answered while it went on


def test_a_huge_login_form_is_refused_unread(server):
    """The login, password and logout forms read at most 64 KiB (no session needed to send one)."""
    before = _rss_mb(server.pid)
    statuses: list = []
    for path in ("/login", "/password", "/logout"):
        _huge_post(server, "none", 100, statuses, path)
    assert statuses == [413] * 3, statuses
    assert _rss_mb(server.pid) - before < 50
