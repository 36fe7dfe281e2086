"""Accounts, sessions, login throttling and the audit trail, in one SQLite file.

* Passwords are hashed with argon2id (argon2-cffi); a generated password is
  returned once to the caller and never stored or logged in clear.
* Sessions are opaque random tokens; only their SHA-256 is stored (the
  ``token_id``), so a copy of the database opens no session.  A session ends
  after ``lifetime`` (12 h) or ``idle`` (30 min without use), at logout, when
  the user is disabled or their password reset.
* Device tokens (unattended wall screens) are long-lived viewer sessions,
  revocable by name.
* Login is throttled in the database (survives a restart): 5 failures per
  user name or 20 per client in 15 minutes, then refused until they age out.
* The audit trail is append-only: who, when, what, before/after, outcome.
  Retention defaults to 183 days (China's Cybersecurity Law, art. 21: network
  logs kept at least six months).

SQLite in WAL mode with ``synchronous=FULL``: a write that returned survives
``kill -9`` and a power cut.  Portable SQL (TEXT/INTEGER only, ISO-8601 UTC
text times, ``?`` placeholders) like the alert store.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .roles import ROLES

UTC = timezone.utc
USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")
MIN_PASSWORD = 12
RETENTION = timedelta(days=183)
_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

DDL = (
    """CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY, display_name TEXT NOT NULL, role TEXT NOT NULL, pw_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL, must_change INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sessions (
    token_id TEXT PRIMARY KEY, username TEXT NOT NULL, kind TEXT NOT NULL, created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL, last_used TEXT NOT NULL, revoked INTEGER NOT NULL, device_name TEXT)""",
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions (username)",
    """CREATE TABLE IF NOT EXISTS login_failures (
    failure_key TEXT PRIMARY KEY, username TEXT NOT NULL, client TEXT NOT NULL, at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS login_failures_at ON login_failures (at)",
    """CREATE TABLE IF NOT EXISTS audit (
    audit_key TEXT PRIMARY KEY, occurred_at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    object_type TEXT NOT NULL, object_id TEXT NOT NULL, outcome TEXT NOT NULL, client TEXT,
    before_json TEXT, after_json TEXT, detail_json TEXT)""",
    "CREATE INDEX IF NOT EXISTS audit_time ON audit (occurred_at)",
)


def default_path() -> Path:
    """``<var>/access.sqlite`` (``SCENIC_TWIN_VAR``, else ``var/`` of the checkout)."""
    import os

    from twin_assets.layout import REPO_ROOT
    return Path(os.environ.get("SCENIC_TWIN_VAR", REPO_ROOT / "var")) / "access.sqlite"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _dt(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_password(n: int = 18) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


class AccessError(ValueError):
    """An account operation that cannot be done; the message says what to do."""


class LoginRefused(Exception):
    def __init__(self, reason: str, retry_after_s: float = 0.0):
        super().__init__(reason)
        self.reason = reason                 # bad_credentials | disabled | rate_limited
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class User:
    username: str
    display_name: str
    role: str
    disabled: bool
    must_change_password: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Session:
    token_id: str
    username: str
    role: str
    display_name: str
    kind: str                 # password | device
    created_at: datetime
    expires_at: datetime
    must_change_password: bool = False
    token: str = ""           # the secret itself: only on the object login() returns


class AccessStore:
    def __init__(self, path: str | Path, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 lifetime: timedelta = timedelta(hours=12), idle: timedelta = timedelta(minutes=30),
                 max_user_failures: int = 5, max_client_failures: int = 20,
                 failure_window: timedelta = timedelta(minutes=15)):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.lifetime, self.idle = lifetime, idle
        self.max_user_failures, self.max_client_failures = max_user_failures, max_client_failures
        self.failure_window = failure_window
        self._ph = PasswordHasher()
        self._dummy = self._ph.hash(secrets.token_hex(16))
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        for q in DDL:
            self._conn.execute(q)

    @classmethod
    def open(cls, path: str | Path | None = None, **kw) -> "AccessStore":
        if path is None:
            path = default_path()
        return cls(path, **kw)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------------ plumbing
    def _q(self, q: str, args=()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(q, args).fetchall()

    def _tx(self, statements: list[tuple[str, tuple]]) -> None:
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                for q, a in statements:
                    c.execute(q, a)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def _audit_stmt(self, actor, action, object_type, object_id, *, before=None, after=None, outcome="ok",
                    client=None, detail=None, at=None) -> tuple[str, tuple]:
        at = at or self.clock()
        key = f"{iso(at)}#{secrets.token_hex(6)}"
        dump = lambda x: None if x is None else json.dumps(x, ensure_ascii=False, default=str)  # noqa: E731
        return ("INSERT INTO audit (audit_key, occurred_at, actor, action, object_type, object_id, outcome, client, "
                "before_json, after_json, detail_json) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (key, iso(at), str(actor), action, object_type, str(object_id), outcome, client,
                 dump(before), dump(after), dump(detail)))

    def record(self, actor: str, action: str, object_type: str, object_id: str, *, before: Any = None,
               after: Any = None, outcome: str = "ok", client: str | None = None, detail: Any = None,
               at: datetime | None = None) -> None:
        """Append one audit row (who, what, before/after).  Never pass secrets."""
        self._tx([self._audit_stmt(actor, action, object_type, object_id, before=before, after=after,
                                   outcome=outcome, client=client, detail=detail, at=at)])

    # ------------------------------------------------------------------ users
    def _row_user(self, r) -> User:
        return User(r[0], r[1], r[2], bool(r[4]), bool(r[5]), _dt(r[6]), _dt(r[7]))

    def user(self, username: str) -> User | None:
        rows = self._q("SELECT * FROM users WHERE username = ?", (username,))
        return self._row_user(rows[0]) if rows else None

    def _need(self, username: str) -> User:
        u = self.user(username)
        if u is None:
            raise AccessError(f"no user {username!r}: list them with `scenic-twin users list`")
        return u

    def list_users(self) -> list[User]:
        return [self._row_user(r) for r in self._q("SELECT * FROM users ORDER BY username")]

    @staticmethod
    def _public(u: User | None) -> dict | None:
        return None if u is None else {"username": u.username, "display_name": u.display_name, "role": u.role,
                                       "disabled": u.disabled, "must_change_password": u.must_change_password}

    def add_user(self, username: str, role: str, *, by: str, display_name: str = "",
                 password: str | None = None) -> tuple[User, str | None]:
        if not USERNAME.match(username or ""):
            raise AccessError(f"user name {username!r}: 2-32 characters, lower-case letters, digits, _ . - ; "
                              "starting with a letter")
        if role not in ROLES:
            raise AccessError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
        if self.user(username) is not None:
            raise AccessError(f"user {username!r} exists: use `scenic-twin users reset-password` or another name")
        generated = None
        if password is None:
            password = generated = generate_password()
        elif len(password) < MIN_PASSWORD:
            raise AccessError(f"a password needs at least {MIN_PASSWORD} characters")
        now = iso(self.clock())
        self._tx([("INSERT INTO users VALUES (?,?,?,?,?,?,?,?)",
                   (username, display_name[:64], role, self._ph.hash(password), 0, int(generated is not None),
                    now, now))])
        u = self._need(username)
        self.record(by, "user.add", "user", username, after=self._public(u))
        return u, generated

    def _update(self, username: str, by: str, action: str, sets: str, args: tuple,
                extra: list[tuple[str, tuple]] = ()) -> User:
        before = self._need(username)
        self._tx([(f"UPDATE users SET {sets}, updated_at = ? WHERE username = ?",
                   args + (iso(self.clock()), username)), *extra])
        after = self._need(username)
        self.record(by, action, "user", username, before=self._public(before), after=self._public(after))
        return after

    def _revoke_stmt(self, username: str) -> tuple[str, tuple]:
        return ("UPDATE sessions SET revoked = 1 WHERE username = ? AND kind = 'password'", (username,))

    def disable_user(self, username: str, *, by: str) -> User:
        return self._update(username, by, "user.disable", "disabled = ?", (1,), [self._revoke_stmt(username)])

    def enable_user(self, username: str, *, by: str) -> User:
        return self._update(username, by, "user.enable", "disabled = ?", (0,))

    def set_role(self, username: str, role: str, *, by: str) -> User:
        if role not in ROLES:
            raise AccessError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
        return self._update(username, by, "user.set_role", "role = ?", (role,), [self._revoke_stmt(username)])

    def reset_password(self, username: str, *, by: str) -> str:
        pw = generate_password()
        self._update(username, by, "user.reset_password", "pw_hash = ?, must_change = ?",
                     (self._ph.hash(pw), 1), [self._revoke_stmt(username)])
        return pw

    def change_password(self, username: str, old: str, new: str) -> None:
        row = self._q("SELECT pw_hash FROM users WHERE username = ?", (username,))
        if not row or not self._verify(row[0][0], old):
            raise AccessError("the current password is wrong")
        if len(new) < MIN_PASSWORD:
            raise AccessError(f"a password needs at least {MIN_PASSWORD} characters")
        if new == old:
            raise AccessError("the new password must differ from the old one")
        self._update(username, username, "user.change_password", "pw_hash = ?, must_change = ?",
                     (self._ph.hash(new), 0))

    def bootstrap_admin(self) -> str | None:
        """With no user at all, create ``admin`` with a one-time password and return it (else None)."""
        if self._q("SELECT COUNT(*) FROM users")[0][0]:
            return None
        _, pw = self.add_user("admin", "admin", by="system:first-start", display_name="Administrator")
        return pw

    def _verify(self, h: str, pw: str) -> bool:
        try:
            return self._ph.verify(h, pw)
        except (VerificationError, InvalidHashError):
            return False

    # ------------------------------------------------------------------ login and sessions
    def _failures(self, username: str, client: str) -> tuple[int, int, datetime | None]:
        since = iso(self.clock() - self.failure_window)
        u = self._q("SELECT COUNT(*), MIN(at) FROM login_failures WHERE username = ? AND at > ?", (username, since))
        c = self._q("SELECT COUNT(*), MIN(at) FROM login_failures WHERE client = ? AND at > ?", (client, since))
        oldest = min([_dt(x) for x in (u[0][1], c[0][1]) if x], default=None)
        return u[0][0], c[0][0], oldest

    def login(self, username: str, password: str, *, client: str = "") -> Session:
        """A new session, or :class:`LoginRefused` (bad_credentials | disabled | rate_limited)."""
        now = self.clock()
        nu, nc, oldest = self._failures(username, client)
        if nu >= self.max_user_failures or nc >= self.max_client_failures:
            retry = 0.0 if oldest is None else (oldest + self.failure_window - now).total_seconds()
            self.record(username or "?", "login", "session", username or "?", outcome="refused", client=client,
                        detail={"reason": "rate_limited"})
            raise LoginRefused("rate_limited", max(retry, 1.0))
        row = self._q("SELECT pw_hash, disabled FROM users WHERE username = ?", (username,))
        ok = self._verify(row[0][0], password) if row else (self._verify(self._dummy, password) and False)
        if not ok:
            self._tx([("INSERT INTO login_failures VALUES (?,?,?,?)",
                       (f"{iso(now)}#{secrets.token_hex(6)}", username, client, iso(now))),
                      self._audit_stmt(username or "?", "login", "session", username or "?", outcome="failed",
                                       client=client, detail={"reason": "bad_credentials"})])
            raise LoginRefused("bad_credentials")
        if row[0][1]:
            self.record(username, "login", "session", username, outcome="refused", client=client,
                        detail={"reason": "disabled"})
            raise LoginRefused("disabled")
        if self._ph.check_needs_rehash(row[0][0]):
            self._tx([("UPDATE users SET pw_hash = ? WHERE username = ?", (self._ph.hash(password), username))])
        token = secrets.token_urlsafe(32)
        tid = _hash_token(token)
        self._tx([("DELETE FROM login_failures WHERE username = ?", (username,)),
                  ("INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?)",
                   (tid, username, "password", iso(now), iso(now + self.lifetime), iso(now), 0, None)),
                  self._audit_stmt(username, "login", "session", tid[:12], client=client)])
        s = self.session_by_id(tid)
        return Session(**{**s.__dict__, "token": token})

    def session(self, token: str) -> Session | None:
        """The live session of a token (password or device), or None."""
        if not token or len(token) > 200:
            return None
        return self.session_by_id(_hash_token(token))

    def session_by_id(self, token_id: str) -> Session | None:
        rows = self._q("SELECT s.token_id, s.username, u.role, u.display_name, s.kind, s.created_at, s.expires_at, "
                       "u.must_change, s.last_used, s.revoked, u.disabled FROM sessions s JOIN users u "
                       "ON u.username = s.username WHERE s.token_id = ?", (token_id,))
        if not rows:
            return None
        r = rows[0]
        now = self.clock()
        if r[9] or r[10] or now >= _dt(r[6]):
            return None
        if r[4] == "password" and now - _dt(r[8]) > self.idle:
            return None
        if r[4] == "password" and now - _dt(r[8]) > timedelta(minutes=1):
            self._tx([("UPDATE sessions SET last_used = ? WHERE token_id = ?", (iso(now), token_id))])
        role = "viewer" if r[4] == "device" else r[2]
        return Session(r[0], r[1], role, r[3], r[4], _dt(r[5]), _dt(r[6]), bool(r[7]))

    def logout(self, token: str) -> None:
        tid = _hash_token(token)
        s = self.session_by_id(tid)
        self._tx([("UPDATE sessions SET revoked = 1 WHERE token_id = ?", (tid,))]
                 + ([self._audit_stmt(s.username, "logout", "session", tid[:12])] if s else []))

    def revoke_user_sessions(self, username: str, *, by: str) -> None:
        self._tx([self._revoke_stmt(username), self._audit_stmt(by, "session.revoke_all", "user", username)])

    # ------------------------------------------------------------------ device tokens
    def issue_device_token(self, name: str, *, by: str) -> str:
        """A long-lived viewer token for an unattended wall screen (printed once)."""
        if not USERNAME.match(name or ""):
            raise AccessError(f"device name {name!r}: lower-case letters, digits, _ . - (2-32)")
        dev_user = f"device.{name}"[:32]
        now = self.clock()
        stmts = []
        if self.user(dev_user) is None:
            stmts.append(("INSERT INTO users VALUES (?,?,?,?,?,?,?,?)",
                          (dev_user, f"大屏 {name}", "viewer", self._ph.hash(secrets.token_hex(32)), 0, 0,
                           iso(now), iso(now))))
        token = "dev_" + secrets.token_urlsafe(32)
        stmts += [("INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?)",
                   (_hash_token(token), dev_user, "device", iso(now), iso(now + timedelta(days=3650)), iso(now), 0,
                    name)),
                  self._audit_stmt(by, "device.issue", "device", name)]
        self._tx(stmts)
        return token

    def device_tokens(self) -> list[dict]:
        return [{"name": r[0], "created_at": r[1], "revoked": bool(r[2])}
                for r in self._q("SELECT device_name, created_at, revoked FROM sessions WHERE kind = 'device' "
                                 "ORDER BY created_at")]

    def revoke_device_token(self, name: str, *, by: str) -> int:
        n = self._q("SELECT COUNT(*) FROM sessions WHERE kind = 'device' AND device_name = ? AND revoked = 0",
                    (name,))[0][0]
        if not n:
            raise AccessError(f"no active device token named {name!r}")
        self._tx([("UPDATE sessions SET revoked = 1 WHERE kind = 'device' AND device_name = ?", (name,)),
                  self._audit_stmt(by, "device.revoke", "device", name)])
        return n

    def device_login(self, token: str, *, client: str = "") -> str:
        """Check a device token (the login form's device field); returns it as the session token."""
        s = self.session(token)
        if s is None or s.kind != "device":
            self.record("device", "login", "session", "device", outcome="failed", client=client,
                        detail={"reason": "bad_device_token"})
            raise LoginRefused("bad_credentials")
        self.record(s.username, "login", "session", s.token_id[:12], client=client)
        return token

    # ------------------------------------------------------------------ audit
    def audit_rows(self, since: datetime | None = None, until: datetime | None = None, actor: str | None = None,
                   action: str | None = None, limit: int = 10_000) -> list[dict]:
        q = "SELECT * FROM audit WHERE 1=1"
        a: list[Any] = []
        for cond, v in (("occurred_at >= ?", since and iso(since)), ("occurred_at <= ?", until and iso(until)),
                        ("actor = ?", actor), ("action = ?", action)):
            if v:
                q += f" AND {cond}"
                a.append(v)
        q += " ORDER BY occurred_at, audit_key LIMIT ?"
        a.append(int(limit))
        cols = ("audit_key", "occurred_at", "actor", "action", "object_type", "object_id", "outcome", "client",
                "before", "after", "detail")
        out = []
        for r in self._q(q, tuple(a)):
            d = dict(zip(cols, r))
            for k in ("before", "after", "detail"):
                d[k] = None if d[k] is None else json.loads(d[k])
            out.append(d)
        return out

    def prune_audit(self, retention: timedelta = RETENTION, *, allow_short: bool = False) -> int:
        if retention < RETENTION and not allow_short:
            raise AccessError("audit retention under 183 days: network logs must be kept six months "
                              "(Cybersecurity Law art. 21); pass allow_short to override")
        cut = iso(self.clock() - retention)
        n = self._q("SELECT COUNT(*) FROM audit WHERE occurred_at < ?", (cut,))[0][0]
        self._tx([("DELETE FROM audit WHERE occurred_at < ?", (cut,)),
                  ("DELETE FROM login_failures WHERE at < ?", (cut,))])
        return n
