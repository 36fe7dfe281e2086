"""Accounts, sessions, login throttling and the audit trail, in one SQLite file (the embedded
default) or in the schema ``access`` of a PostgreSQL database (the platform, shared by every
front and web worker).

* **Passwords** are hashed with argon2id; a generated one (new account,
  reset, first start) is returned once to the caller and never stored or
  logged in clear.  Hashes made with weaker settings are upgraded at the next
  successful login.
* **Sessions** are opaque random tokens; only their SHA-256 (``token_id``) is
  stored, so a copy of the database opens no session.  A session ends after
  ``lifetime`` (12 h), after ``idle`` (30 min without use), at logout, when
  its user is disabled, changes role or has the password reset.  Use is
  recorded at most once a minute, so a session may end up to a minute before
  ``idle`` has passed since its very last use — never later.
* **Device tokens** are long-lived viewer sessions of unattended wall
  screens, named, listed and revocable.  They belong to ``device:<name>``,
  which no account can be called (the user-name grammar has no colon).
* **Login throttling** lives in the database, so a restart does not reset it:
  after 5 failures for one user name or 20 from one client within 15 minutes
  further attempts are refused, even with the right password, until the
  oldest failures age out.  An attempt counts as a failure from the moment
  it starts (in the same transaction as the check), so parallel guesses
  cannot slip past the limit; a successful login clears the user name's
  failures.
* **The audit trail** is append-only: who, when, what, before/after,
  outcome and client.  Every account change is written in the same
  transaction as its audit row.  Retention defaults to 183 days (China's
  Cybersecurity Law, art. 21: network logs kept at least six months).

SQLite in WAL mode with ``synchronous=FULL``: a write that returned survives
``kill -9`` and a power cut; on PostgreSQL, its commit.  The SQL keeps to what
both take (TEXT/INTEGER columns, ISO 8601 UTC text times that sort, ``?``
placeholders, keys computed by the writer instead of AUTOINCREMENT), as in
:mod:`indicators.alerts.store`; :mod:`indicators.sqlstore` opens either and
serialises writers (``BEGIN IMMEDIATE``; a per-schema advisory lock on
PostgreSQL, so the throttle's check-and-count holds across web workers) and
migrates the schema (``MIGRATIONS``).  Time comes from the injected ``clock``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from indicators import sqlstore

from . import passwords
from .roles import ROLES

UTC = timezone.utc
USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")
"""User and device names: 2-32 characters, lower-case letters, digits, ``_ . -``, first a letter."""
RETENTION = timedelta(days=183)
"""Shortest audit retention allowed without ``allow_short`` (six months and a few days)."""
SLIDE_EVERY = timedelta(minutes=1)
"""How often a session's last use is written (a lookup per request must not be a write per request)."""
DEVICE = "device:"
NEVER = "9999-12-31T23:59:59.999Z"
SECRET_KEYS = frozenset({"password", "old_password", "new_password", "token", "secret", "pw_hash",
                         "password_hash"})
"""Keys an audit value may never carry; :meth:`AccessStore.record` replaces their values."""
SCHEMA_VERSION = 1

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS users (
    username     TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    pw_hash      TEXT NOT NULL,
    disabled     INTEGER NOT NULL,
    must_change  INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS sessions (
    token_id     TEXT PRIMARY KEY,
    username     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    last_used    TEXT NOT NULL,
    revoked      INTEGER NOT NULL,
    device_name  TEXT
)""",
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions (username)",
    """CREATE TABLE IF NOT EXISTS login_failures (
    failure_key  TEXT PRIMARY KEY,
    username     TEXT NOT NULL,
    client       TEXT NOT NULL,
    at           TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS login_failures_user ON login_failures (username, at)",
    "CREATE INDEX IF NOT EXISTS login_failures_client ON login_failures (client, at)",
    """CREATE TABLE IF NOT EXISTS audit (
    audit_key    TEXT PRIMARY KEY,
    occurred_at  TEXT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    object_type  TEXT NOT NULL,
    object_id    TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    client       TEXT,
    before_json  TEXT,
    after_json   TEXT,
    detail_json  TEXT
)""",
    "CREATE INDEX IF NOT EXISTS audit_time ON audit (occurred_at)",
    """CREATE TABLE IF NOT EXISTS meta (
    name         TEXT PRIMARY KEY,
    content      TEXT NOT NULL
)""",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (DDL,)
"""Schema versions in order (see indicators.sqlstore): step n brings a database from n-1 to n."""
assert len(MIGRATIONS) == SCHEMA_VERSION

_USER_COLS = "username, display_name, role, disabled, must_change, created_at, updated_at"
_SESSION = ("SELECT s.token_id, s.username, s.kind, s.device_name, s.created_at, s.expires_at, s.last_used, "
            "s.revoked, u.role, u.display_name, u.disabled, u.must_change "
            "FROM sessions s LEFT JOIN users u ON u.username = s.username WHERE s.token_id = ?")
_INSERT_SESSION = ("INSERT INTO sessions (token_id, username, kind, created_at, expires_at, last_used, revoked, "
                   "device_name) VALUES (?, ?, ?, ?, ?, ?, 0, ?)")
_AUDIT_COLS = ("key", "at", "actor", "action", "object_type", "object_id", "outcome", "client", "before", "after",
               "detail")


def default_path() -> Path:
    """``<var>/access.sqlite``: ``SCENIC_TWIN_VAR``, else ``var/`` of the checkout.

    The same folder as ``indicators.service.var_dir()``, spelled out here
    because the service is a higher layer than this package."""
    return Path(os.environ.get("SCENIC_TWIN_VAR", Path(__file__).resolve().parents[2] / "var")) / "access.sqlite"


def iso(t: datetime) -> str:
    """UTC ISO 8601 with milliseconds and 'Z' (text that sorts as time); a naive time is taken as UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dt(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def token_id(token: str) -> str:
    """The stored name of a session token: its SHA-256, which opens nothing and is safe to log."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _dump(x: Any) -> str | None:
    return None if x is None else json.dumps(_scrub(x), ensure_ascii=False, sort_keys=True, default=str)


def _scrub(x: Any) -> Any:
    """``x`` with the value of every secret-named key replaced (a guard for callers' audit values)."""
    if isinstance(x, dict):
        return {k: "[redacted]" if str(k).lower() in SECRET_KEYS else _scrub(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_scrub(v) for v in x]
    return x


class AccessError(ValueError):
    """An account operation that cannot be done; the message says what to do instead."""


class LoginRefused(Exception):
    """A login that did not open a session.

    ``reason`` is ``bad_credentials`` (unknown user and wrong password alike),
    ``disabled`` (right password, account disabled) or ``rate_limited`` (too
    many failures; ``retry_after_s`` says when the next attempt can count)."""

    def __init__(self, reason: str, retry_after_s: float = 0.0):
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class User:
    """An account as administrators see it (never its password hash)."""

    username: str
    display_name: str
    role: str
    disabled: bool
    must_change_password: bool      # set by a generated password; cleared by change_password
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Session:
    """A live session: who is behind a token and what they may do.

    ``token_id`` is the SHA-256 of the token (safe to log; audit rows carry
    its first 12 characters).  ``token`` — the secret the browser keeps —
    is only set on the object :meth:`AccessStore.login` returns, and never
    shown by ``repr``."""

    token_id: str
    username: str
    role: str
    display_name: str
    created_at: datetime
    expires_at: datetime
    kind: str                       # "password" | "device"
    must_change_password: bool = False
    token: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class DeviceToken:
    """A wall screen's token as listed (the token itself is shown only when issued)."""

    name: str
    token_id: str                   # first 12 characters of the hash, as in the audit
    created_at: datetime
    last_used: datetime
    revoked: bool


def _public(u: User | None) -> dict | None:
    """What the audit keeps of an account before and after a change."""
    if u is None:
        return None
    return {"username": u.username, "display_name": u.display_name, "role": u.role, "disabled": u.disabled,
            "must_change_password": u.must_change_password}


def _user_row(r) -> User:
    return User(r[0], r[1], r[2], bool(r[3]), bool(r[4]), _dt(r[5]), _dt(r[6]))


def _check_name(name: str, what: str = "user name") -> None:
    if not isinstance(name, str) or not USERNAME.match(name):
        raise AccessError(f"{what} {name!r} is not allowed: 2-32 characters, lower-case letters, digits, "
                          "'_', '.' or '-', starting with a letter (e.g. zhang.wei)")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccessError(f"unknown role {role!r}: one of {', '.join(ROLES)}")


class AccessStore:
    """See the module docstring.  Thread-safe: one connection behind a lock.

    Settings: ``lifetime`` and ``idle`` of password sessions; at most
    ``max_user_failures`` per user name and ``max_client_failures`` per client
    within ``failure_window``; ``hasher`` (argon2id defaults)."""

    def __init__(self, path: str | os.PathLike[str], *, clock: Callable[[], datetime] = _utcnow,
                 lifetime: timedelta = timedelta(hours=12), idle: timedelta = timedelta(minutes=30),
                 max_user_failures: int = 5, max_client_failures: int = 20,
                 failure_window: timedelta = timedelta(minutes=15), hasher: PasswordHasher | None = None):
        self.path = os.fspath(path)
        self.clock = clock
        self.lifetime, self.idle = lifetime, idle
        self.max_user_failures, self.max_client_failures = max_user_failures, max_client_failures
        self.failure_window = failure_window
        self._ph = hasher or PasswordHasher()
        self._dummy: str | None = None
        self._lock = threading.RLock()
        # a SQLite file, or postgresql://… with the tables in the schema "access" (shared by every
        # front and web worker of the platform: one login holds on all of them)
        self._db = sqlstore.connect(self.path, schema="access")
        self._db.migrate(MIGRATIONS, store="access")

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, **settings: Any) -> "AccessStore":
        """The store at ``path`` - a SQLite file, or a ``postgresql://`` URL (schema ``access``) - by
        default :func:`default_path`; created, or brought to this program's schema, if needed."""
        return cls(default_path() if path is None else path, **settings)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "AccessStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One write transaction, serialised with every other writer of the store (several processes
        on one PostgreSQL too); durable when the block returns, rolled back when it raises."""
        with self._lock, self._db.write() as cur:
            yield cur

    def _q(self, q: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(q, args).fetchall()

    def _audit(self, cur, actor: str, action: str, object_type: str, object_id: str, *, before: Any = None,
               after: Any = None, outcome: str = "ok", client: str | None = None, detail: Any = None,
               at: datetime | None = None) -> None:
        when = iso(at or self.clock())
        # time, then the row's place within its millisecond (writers are serialised by _tx),
        # so keys sort in the order things happened; the random suffix keeps keys of merged trails apart
        n = cur.execute("SELECT COUNT(*) FROM audit WHERE occurred_at = ?", (when,)).fetchone()[0]
        key = f"{when}#{n:06d}-{secrets.token_hex(4)}"
        cur.execute("INSERT INTO audit (audit_key, occurred_at, actor, action, object_type, object_id, outcome, "
                    "client, before_json, after_json, detail_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, when, str(actor), action, object_type, str(object_id), outcome, client,
                     _dump(before), _dump(after), _dump(detail)))

    def _dummy_hash(self) -> str:
        """A hash to verify against when the user does not exist, so that "no such user" takes as long as
        "wrong password".  Made at the first attempt of either kind, so that one costs the same too."""
        with self._lock:
            if self._dummy is None:
                self._dummy = self._ph.hash(secrets.token_urlsafe(16))
            return self._dummy

    def _verify(self, pw_hash: str, password: str) -> bool:
        try:
            return self._ph.verify(pw_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    # ------------------------------------------------------------------ users
    @staticmethod
    def _fetch_user(cur, username: str) -> User | None:
        r = cur.execute(f"SELECT {_USER_COLS} FROM users WHERE username = ?", (username,)).fetchone()
        return _user_row(r) if r else None

    def user(self, username: str) -> User | None:
        with self._lock:
            return self._fetch_user(self._db, username)

    def list_users(self) -> list[User]:
        return [_user_row(r) for r in self._q(f"SELECT {_USER_COLS} FROM users ORDER BY username")]

    def add_user(self, username: str, role: str, *, by: str, display_name: str = "",
                 password: str | None = None) -> tuple[User, str | None]:
        """Create an account.  Without ``password`` one is generated, returned here once (the second
        item, else None) and must be changed at the first login."""
        _check_name(username)
        _check_role(role)
        display_name = (display_name or "").strip()
        if len(display_name) > 64:
            raise AccessError("a display name has at most 64 characters")
        generated = None
        if password is None:
            password = generated = passwords.generate()
        elif why := passwords.problem(password):
            raise AccessError(why)
        pw_hash = self._ph.hash(password)           # before the lock: hashing takes a while on purpose
        now = iso(self.clock())
        with self._tx() as cur:
            if self._fetch_user(cur, username) is not None:
                raise AccessError(f"user {username!r} exists: choose another name, or give them a new password "
                                  f"with `scenic-twin users reset-password {username}`")
            cur.execute("INSERT INTO users (username, display_name, role, pw_hash, disabled, must_change, "
                        "created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
                        (username, display_name, role, pw_hash, int(generated is not None), now, now))
            user = self._fetch_user(cur, username)
            self._audit(cur, by, "user.add", "user", username, after=_public(user))
        return user, generated

    def bootstrap_admin(self) -> str | None:
        """With no account at all, create ``admin`` (role admin) and return its one-time password for the
        caller to show once; otherwise None.  There is never a default password."""
        if self._q("SELECT COUNT(*) FROM users")[0][0]:
            return None
        password = passwords.generate()
        pw_hash = self._ph.hash(password)
        now = iso(self.clock())
        with self._tx() as cur:
            if cur.execute("SELECT COUNT(*) FROM users").fetchone()[0]:
                return None                         # another process was first
            cur.execute("INSERT INTO users (username, display_name, role, pw_hash, disabled, must_change, "
                        "created_at, updated_at) VALUES ('admin', 'Administrator', 'admin', ?, 0, 1, ?, ?)",
                        (pw_hash, now, now))
            self._audit(cur, "system:first-start", "user.add", "user", "admin",
                        after=_public(self._fetch_user(cur, "admin")))
        return password

    def _change(self, username: str, by: str, action: str, sets: dict[str, Any], *, end_sessions: bool = False,
                guard: Callable[[Any, User], None] | None = None) -> User:
        """Update one account, maybe end its sessions, and audit before/after — one transaction."""
        with self._tx() as cur:
            before = self._fetch_user(cur, username)
            if before is None:
                raise AccessError(f"no user {username!r}: list them with `scenic-twin users list`")
            if guard is not None:
                guard(cur, before)
            assign = ", ".join(f"{col} = ?" for col in sets)
            cur.execute(f"UPDATE users SET {assign}, updated_at = ? WHERE username = ?",
                        (*sets.values(), iso(self.clock()), username))
            ended = self._end_sessions(cur, username) if end_sessions else None
            after = self._fetch_user(cur, username)
            self._audit(cur, by, action, "user", username, before=_public(before), after=_public(after),
                        detail=None if ended is None else {"sessions_ended": ended})
        return after

    @staticmethod
    def _keep_an_admin(cur, user: User) -> None:
        """Refuse to disable or demote the last active administrator (nobody could manage accounts)."""
        if user.role != "admin" or user.disabled:
            return
        others = cur.execute("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND username <> ?",
                             (user.username,)).fetchone()[0]
        if not others:
            raise AccessError(f"{user.username!r} is the last active administrator: make another user admin "
                              "first (`scenic-twin users set-role NAME admin`)")

    def disable_user(self, username: str, by: str) -> User:
        """Disable an account; its sessions end at once."""
        return self._change(username, by, "user.disable", {"disabled": 1}, end_sessions=True,
                            guard=self._keep_an_admin)

    def enable_user(self, username: str, by: str) -> User:
        """Enable an account again (its old sessions stay ended)."""
        return self._change(username, by, "user.enable", {"disabled": 0})

    def set_role(self, username: str, role: str, by: str) -> User:
        """Change an account's role; its sessions end, so no open page keeps the old role."""
        _check_role(role)
        return self._change(username, by, "user.set_role", {"role": role}, end_sessions=True,
                            guard=None if role == "admin" else self._keep_an_admin)

    def reset_password(self, username: str, by: str) -> str:
        """Give an account a new one-time password (returned once) and end its sessions."""
        password = passwords.generate()
        self._change(username, by, "user.reset_password", {"pw_hash": self._ph.hash(password), "must_change": 1},
                     end_sessions=True)
        return password

    def change_password(self, username: str, old: str, new: str, *, client: str | None = None) -> User:
        """The user's own change: ``old`` must be right, ``new`` at least 12 characters and not ``old``.
        Clears must_change_password.  A wrong ``old`` counts as a failed login, so a left-open session
        cannot be used to guess the password: :class:`AccessError` says what is wrong, and
        :class:`LoginRefused` ('rate_limited') comes after too many failures."""
        if why := passwords.problem(new, old):
            raise AccessError(why)
        row, _ = self._begin_attempt(username, client, "user.change_password")
        if row is None or not self._verify(row[0], old):
            self.record(username, "user.change_password", "user", username, outcome="failed", client=client,
                        detail={"reason": "bad_credentials"})
            raise AccessError("the current password is wrong")
        if row[1]:
            self.record(username, "user.change_password", "user", username, outcome="refused", client=client,
                        detail={"reason": "disabled"})
            raise AccessError("this account is disabled")
        pw_hash = self._ph.hash(new)
        with self._tx() as cur:
            cur.execute("DELETE FROM login_failures WHERE username = ?", (username,))
        return self._change(username, username, "user.change_password", {"pw_hash": pw_hash, "must_change": 0})

    # ------------------------------------------------------------------ throttling
    def _retry_after(self, cur, now: datetime, username: str | None, client: str | None) -> float | None:
        """Seconds until an attempt for this user name / from this client may count again (None: now)."""
        since = iso(now - self.failure_window)
        waits = []
        for col, value, cap in (("username", username, self.max_user_failures),
                                ("client", client, self.max_client_failures)):
            if value is None:
                continue
            ats = [r[0] for r in cur.execute(f"SELECT at FROM login_failures WHERE {col} = ? AND at > ? "
                                             "ORDER BY at", (value, since))]
            if len(ats) >= cap:             # allowed again once all but cap-1 of them have aged out
                waits.append((_dt(ats[len(ats) - cap]) + self.failure_window - now).total_seconds())
        return max(waits) if waits else None

    def _begin_attempt(self, username: str | None, client: str | None, action: str) -> tuple[tuple | None, str]:
        """Check the throttle and count this attempt as a failure, in one transaction, so that parallel
        guesses cannot pass the limit together.  Returns the account's (pw_hash, disabled) or None, and
        the failure's key (a success removes it).  ``username`` None: a device token, limited per client
        only.  Raises LoginRefused('rate_limited')."""
        now = self.clock()
        with self._tx() as cur:
            retry = self._retry_after(cur, now, username, client)
            if retry is None:
                key = f"{iso(now)}#{secrets.token_hex(6)}"
                cur.execute("INSERT INTO login_failures (failure_key, username, client, at) VALUES (?, ?, ?, ?)",
                            (key, DEVICE if username is None else username, client or "", iso(now)))
                row = None if username is None else cur.execute(
                    "SELECT pw_hash, disabled FROM users WHERE username = ?", (username,)).fetchone()
                return row, key
            who = DEVICE + "?" if username is None else username or "?"
            self._audit(cur, who, action, "session" if action == "login" else "user", who, outcome="refused",
                        client=client, detail={"reason": "rate_limited", "retry_after_s": round(retry)})
        raise LoginRefused("rate_limited", retry)

    # ------------------------------------------------------------------ login and sessions
    def login(self, username: str, password: str, *, client: str) -> Session:
        """A new password session (``.token`` is the secret for the cookie), or :class:`LoginRefused`."""
        name = (username or "").strip().lower()
        row, _ = self._begin_attempt(name, client, "login")
        dummy = self._dummy_hash()
        ok = self._verify(row[0] if row else dummy, password) and row is not None
        if not ok:
            self.record(name or "?", "login", "session", name or "?", outcome="failed", client=client,
                        detail={"reason": "bad_credentials"})
            raise LoginRefused("bad_credentials")
        if row[1]:
            self.record(name, "login", "session", name, outcome="refused", client=client,
                        detail={"reason": "disabled"})
            raise LoginRefused("disabled")
        rehash = self._ph.hash(password) if self._ph.check_needs_rehash(row[0]) else None
        token = secrets.token_urlsafe(32)
        tid = token_id(token)
        now = self.clock()
        with self._tx() as cur:
            cur.execute("DELETE FROM login_failures WHERE username = ?", (name,))
            if rehash:
                cur.execute("UPDATE users SET pw_hash = ? WHERE username = ?", (rehash, name))
            cur.execute(_INSERT_SESSION, (tid, name, "password", iso(now), iso(now + self.lifetime), iso(now), None))
            self._audit(cur, name, "login", "session", tid[:12], client=client,
                        detail={"kind": "password", "rehashed": bool(rehash)})
            s = self._live(cur.execute(_SESSION, (tid,)).fetchone(), now)
        return replace(s, token=token)

    def _live(self, r, now: datetime) -> Session | None:
        """The session of a joined sessions/users row if it may still be used."""
        if r is None:
            return None
        tid, username, kind, device, created, expires, last_used, revoked, role, display, disabled, must = r
        if revoked or now >= _dt(expires):
            return None
        if kind == "device":
            return Session(tid, username, "viewer", device, _dt(created), _dt(expires), "device")
        if role is None or disabled or now - _dt(last_used) >= self.idle:
            return None
        return Session(tid, username, role, display, _dt(created), _dt(expires), "password", bool(must))

    def session(self, token: str) -> Session | None:
        """The live session of a token (password or device), or None: unknown, expired, idle, revoked,
        or its user disabled.  Slides the idle clock."""
        if not token or len(token) > 256:
            return None
        return self.session_by_id(token_id(token))

    def session_by_id(self, tid: str, *, touch: bool = True) -> Session | None:
        """As :meth:`session`, by ``token_id`` (for a server re-checking a session it already holds).
        ``touch=False`` checks without counting as use (a push to the page is not the user acting,
        so it must not keep an idle session alive)."""
        now = self.clock()
        with self._lock:
            r = self._db.execute(_SESSION, (tid,)).fetchone()
            s = self._live(r, now)
            if touch and s is not None and now - _dt(r[6]) >= SLIDE_EVERY:
                self._db.execute("UPDATE sessions SET last_used = ? WHERE token_id = ?", (iso(now), tid))
        return s

    def logout(self, token: str) -> None:
        """End the session of a token (nothing happens for an unknown one)."""
        tid = token_id(token)
        now = self.clock()
        with self._tx() as cur:
            s = self._live(cur.execute(_SESSION, (tid,)).fetchone(), now)
            cur.execute("UPDATE sessions SET revoked = 1 WHERE token_id = ?", (tid,))
            if s is not None:
                self._audit(cur, s.username, "logout", "session", tid[:12], detail={"kind": s.kind})

    @staticmethod
    def _end_sessions(cur, username: str) -> int:
        return cur.execute("UPDATE sessions SET revoked = 1 WHERE username = ? AND revoked = 0",
                           (username,)).rowcount

    def revoke_user_sessions(self, username: str, by: str = "system") -> int:
        """End every session of an account; returns how many were live."""
        with self._tx() as cur:
            n = self._end_sessions(cur, username)
            self._audit(cur, by, "session.revoke_all", "user", username, detail={"sessions_ended": n})
        return n

    # ------------------------------------------------------------------ device tokens
    def issue_device_token(self, name: str, *, by: str) -> str:
        """A viewer token for the unattended wall screen ``name``, valid until revoked; returned once."""
        _check_name(name, "device name")
        token = secrets.token_urlsafe(32)
        tid = token_id(token)
        now = iso(self.clock())
        with self._tx() as cur:
            if cur.execute("SELECT COUNT(*) FROM sessions WHERE kind = 'device' AND device_name = ? AND revoked = 0",
                           (name,)).fetchone()[0]:
                raise AccessError(f"device {name!r} has a token: revoke it first with "
                                  f"`scenic-twin users revoke-device {name}`")
            cur.execute(_INSERT_SESSION, (tid, DEVICE + name, "device", now, NEVER, now, name))
            self._audit(cur, by, "device.issue", "device", name,
                        after={"name": name, "role": "viewer", "token_id": tid[:12]})
        return token

    def device_tokens(self) -> list[DeviceToken]:
        """Every device token ever issued, oldest first (revoked ones too)."""
        return [DeviceToken(r[0], r[1][:12], _dt(r[2]), _dt(r[3]), bool(r[4])) for r in self._q(
            "SELECT device_name, token_id, created_at, last_used, revoked FROM sessions WHERE kind = 'device' "
            "ORDER BY created_at, device_name")]

    def revoke_device_token(self, name: str, by: str) -> int:
        """Revoke the live token(s) of a wall screen; returns how many."""
        with self._tx() as cur:
            n = cur.execute("UPDATE sessions SET revoked = 1 WHERE kind = 'device' AND device_name = ? "
                            "AND revoked = 0", (name,)).rowcount
            if not n:
                raise AccessError(f"no live device token named {name!r}: list them with "
                                  "`scenic-twin users devices`")
            self._audit(cur, by, "device.revoke", "device", name, before={"name": name, "revoked": False},
                        after={"name": name, "revoked": True})
        return n

    def device_login(self, token: str, *, client: str) -> str:
        """Check a device token typed into the login page; returns it (it is the session token).
        Wrong tokens count against the client's failure limit."""
        _, attempt = self._begin_attempt(None, client, "login")
        s = self.session(token)
        if s is None or s.kind != "device":
            self.record(DEVICE + "?", "login", "session", "device", outcome="failed", client=client,
                        detail={"reason": "bad_credentials", "kind": "device"})
            raise LoginRefused("bad_credentials")
        with self._tx() as cur:
            cur.execute("DELETE FROM login_failures WHERE failure_key = ?", (attempt,))
            self._audit(cur, s.username, "login", "session", s.token_id[:12], client=client,
                        detail={"kind": "device"})
        return token

    # ------------------------------------------------------------------ audit
    def record(self, actor: str, action: str, object_type: str, object_id: str, *, before: Any = None,
               after: Any = None, outcome: str = "ok", client: str | None = None, detail: Any = None,
               at: datetime | None = None) -> None:
        """Append one audit row: who did what to which object, with JSON-able before/after values and
        an outcome ("ok", "refused", "failed").  Values under secret-named keys are replaced."""
        with self._tx() as cur:
            self._audit(cur, actor, action, object_type, object_id, before=before, after=after, outcome=outcome,
                        client=client, detail=detail, at=at)

    def audit_rows(self, since: datetime | None = None, until: datetime | None = None, actor: str | None = None,
                   action: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        """The newest ``limit`` rows that match (``since`` ≤ time ≤ ``until``), oldest first.

        Keys: key, at (ISO text), actor, action, object_type, object_id, outcome, client, before, after,
        detail (the last three decoded from JSON)."""
        where, args = [], []
        for cond, value in (("occurred_at >= ?", since and iso(since)), ("occurred_at <= ?", until and iso(until)),
                            ("actor = ?", actor), ("action = ?", action)):
            if value is not None:
                where.append(cond)
                args.append(value)
        rows = self._q("SELECT audit_key, occurred_at, actor, action, object_type, object_id, outcome, client, "
                       "before_json, after_json, detail_json FROM audit"
                       + (" WHERE " + " AND ".join(where) if where else "")
                       + " ORDER BY occurred_at DESC, audit_key DESC LIMIT ?", (*args, int(limit)))
        out = []
        for r in reversed(rows):
            d = dict(zip(_AUDIT_COLS, r))
            for k in ("before", "after", "detail"):
                d[k] = None if d[k] is None else json.loads(d[k])
            out.append(d)
        return out

    def prune_audit(self, retention: timedelta = RETENTION, *, allow_short: bool = False,
                    by: str = "system") -> int:
        """Delete audit rows older than ``retention`` (and spent login failures and long-expired
        sessions); returns the number of audit rows deleted.  The prune is itself audited."""
        if retention < RETENTION and not allow_short:
            raise AccessError(f"an audit retention of {retention.days} days is under six months: China's "
                              "Cybersecurity Law (art. 21) asks network logs to be kept at least that long; "
                              "keep 183 days or more")
        now = self.clock()
        cut = iso(now - retention)
        with self._tx() as cur:
            n = cur.execute("DELETE FROM audit WHERE occurred_at < ?", (cut,)).rowcount
            cur.execute("DELETE FROM login_failures WHERE at <= ?", (iso(now - self.failure_window),))
            cur.execute("DELETE FROM sessions WHERE expires_at < ?", (cut,))
            self._audit(cur, by, "audit.prune", "audit", "access",
                        detail={"deleted": n, "retention_days": retention.days, "before": cut})
        return n


__all__ = ["AccessError", "AccessStore", "DeviceToken", "LoginRefused", "RETENTION", "Session", "User",
           "default_path", "iso", "token_id"]
