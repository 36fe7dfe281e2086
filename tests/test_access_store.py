"""Accounts, sessions, login throttling, device tokens and the audit trail (indicators.access).

Time comes from a fake clock; passwords are hashed with real argon2id at its
lowest cost (the default cost is checked once, where it matters: rehashing).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from indicators import sqlstore
from indicators.access import passwords
from indicators.access.roles import GRANTS, ROLE_NAMES, ROLES, allowed
from indicators.access.store import AccessError, AccessStore, LoginRefused

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 10, 1, 11, 0, tzinfo=timezone.utc)
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PW = "riverside-patrol-2026"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: datetime = T0):
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw) -> None:
        self.t += timedelta(**kw)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def path(tmp_path):
    return tmp_path / "access.sqlite"


@pytest.fixture
def store(path, clock):
    st = AccessStore.open(path, clock=clock, hasher=CHEAP)
    yield st
    st.close()


@pytest.fixture
def op1(store):
    user, _ = store.add_user("op1", "operator", by="admin", display_name="张伟", password=PW)
    return user


def refused(fn, *args, **kw) -> LoginRefused:
    with pytest.raises(LoginRefused) as e:
        fn(*args, **kw)
    return e.value


# --------------------------------------------------------------------------- roles
EXPECTED_GRANTS = {
    "viewer": {"viewer"},
    "patrol": {"viewer", "patrol"},
    "operator": {"viewer", "operator"},
    "supervisor": {"viewer", "operator", "supervisor"},
    "admin": {"viewer", "admin"},
}


@pytest.mark.parametrize("user_role", ROLES)
@pytest.mark.parametrize("needed", ROLES)
def test_a_role_may_use_exactly_what_it_is_granted(user_role, needed):
    assert allowed(user_role, needed) == (needed in EXPECTED_GRANTS[user_role])


def test_an_unknown_role_may_use_nothing_and_every_role_has_a_chinese_and_english_name():
    assert set(GRANTS) == set(ROLES) == set(ROLE_NAMES)
    assert not any(allowed("root", r) for r in ROLES)
    for code, (zh, en) in ROLE_NAMES.items():
        assert zh and en and code not in (zh, en)


# --------------------------------------------------------------------------- accounts
def test_a_generated_password_is_long_unambiguous_fresh_and_must_be_changed(store):
    user, pw = store.add_user("op2", "operator", by="admin")
    assert user.must_change_password and len(pw) >= 16
    assert not set(pw) & set("0O1lIio")
    assert len({passwords.generate() for _ in range(200)}) == 200
    assert store.login("op2", pw, client="c").must_change_password
    chosen, none = store.add_user("op3", "operator", by="admin", password=PW)
    assert none is None and not chosen.must_change_password


@pytest.mark.parametrize("name", ["Bob", "b", "1abc", "_abc", "a b", "zhang@wei", "张伟", "a" * 33, "", "device:x"])
def test_a_user_name_outside_the_grammar_is_refused_with_the_rule(store, name):
    with pytest.raises(AccessError, match="lower-case letters"):
        store.add_user(name, "viewer", by="admin")
    assert store.list_users() == []


def test_a_duplicate_user_an_unknown_role_and_a_short_password_are_refused(store, op1):
    with pytest.raises(AccessError, match="exists"):
        store.add_user("op1", "viewer", by="admin")
    with pytest.raises(AccessError, match="unknown role 'root'"):
        store.add_user("op9", "root", by="admin")
    with pytest.raises(AccessError, match="at least 12"):
        store.add_user("op9", "viewer", by="admin", password="short")
    assert [u.username for u in store.list_users()] == ["op1"]
    assert store.user("op1").display_name == "张伟" and store.user("nobody") is None


def stored(path, query: str) -> list[tuple]:
    """Rows read past the store, on its own connection (the SQLite file, or on PostgreSQL the
    schema the suite gives that path: tests/conftest.py)."""
    db = sqlstore.connect(path, schema="access")
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def test_no_password_or_token_is_ever_stored_in_clear(store, path, op1):
    _, generated = store.add_user("op2", "operator", by="admin")
    reset = store.reset_password("op1", by="admin")
    store.change_password("op1", reset, "a-new-long-password-42")
    session = store.login("op1", "a-new-long-password-42", client="c")
    device = store.issue_device_token("wall-1", by="admin")
    refused(store.login, "op2", "typed-wrong-password", client="c")
    secrets_ = [PW, generated, reset, "a-new-long-password-42", session.token, device]
    audit = json.dumps(store.audit_rows(), ensure_ascii=False)
    rows = json.dumps([stored(path, f"SELECT * FROM {t}") for t in ("users", "sessions", "login_failures", "audit",
                                                                    "meta")], ensure_ascii=False)
    on_sqlite = store._db.dialect == "sqlite"
    files = [p for p in (path, Path(f"{path}-wal")) if on_sqlite and p.exists()]
    for s in secrets_:
        assert s not in audit and s not in rows
        assert s not in repr(session)
        for f in files:
            assert s.encode() not in f.read_bytes(), f"{s!r} found in {f.name}"
    store.close()
    for s in secrets_:
        assert not on_sqlite or s.encode() not in path.read_bytes()


def test_hashes_are_argon2id_and_a_weaker_one_is_upgraded_at_the_next_login(path, clock):
    with AccessStore.open(path, clock=clock, hasher=CHEAP) as st:
        st.add_user("op1", "operator", by="admin", password=PW)
    pw_hash = lambda: stored(path, "SELECT pw_hash FROM users")[0][0]  # noqa: E731
    assert pw_hash().startswith("$argon2id$v=19$m=8,t=1,p=1$")
    with AccessStore.open(path, clock=clock) as st:             # the default cost
        st.login("op1", PW, client="c")
        assert pw_hash().startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert st.login("op1", PW, client="c").username == "op1"
        assert st.audit_rows(action="login")[0]["detail"]["rehashed"] is True


def test_a_user_changes_their_password_only_with_the_current_one(store):
    _, first = store.add_user("op2", "operator", by="admin")
    with pytest.raises(AccessError, match="at least 12"):
        store.change_password("op2", first, "short")
    with pytest.raises(AccessError, match="differ"):
        store.change_password("op2", first, first)
    with pytest.raises(AccessError, match="current password is wrong"):
        store.change_password("op2", "not-the-password", "a-new-long-password-42")
    user = store.change_password("op2", first, "a-new-long-password-42")
    assert not user.must_change_password
    refused(store.login, "op2", first, client="c")
    assert store.login("op2", "a-new-long-password-42", client="c").username == "op2"


def test_guessing_the_current_password_counts_as_failed_logins(store, op1):
    for _ in range(5):
        with pytest.raises(AccessError):
            store.change_password("op1", "guess-guess-guess", "a-new-long-password-42")
    assert refused(store.login, "op1", PW, client="c").reason == "rate_limited"
    assert [r["outcome"] for r in store.audit_rows(action="user.change_password")] == ["failed"] * 5


# --------------------------------------------------------------------------- login
def test_login_opens_a_session_that_the_token_finds(store, op1, clock):
    s = store.login("op1", PW, client="10.0.0.1")
    assert (s.username, s.role, s.display_name, s.kind) == ("op1", "operator", "张伟", "password")
    assert (s.created_at, s.expires_at) == (T0, T0 + timedelta(hours=12))
    assert len(s.token) >= 40 and s.token_id != s.token and s.token not in repr(s)
    assert store.session(s.token) == s
    assert store.login(" OP1 ", PW, client="10.0.0.1").username == "op1"     # as typed on a phone
    assert store.session("not-a-token") is None and store.session("") is None


def test_an_unknown_user_and_a_wrong_password_get_the_same_answer(store, op1):
    wrong = refused(store.login, "op1", "wrong-password-123", client="c")
    unknown = refused(store.login, "nobody", PW, client="c")
    assert (wrong.reason, str(wrong)) == (unknown.reason, str(unknown)) == ("bad_credentials", "bad_credentials")


def test_a_disabled_user_is_told_so_only_with_the_right_password(store, op1):
    store.disable_user("op1", by="admin")
    assert refused(store.login, "op1", PW, client="c").reason == "disabled"
    assert refused(store.login, "op1", "wrong-password-123", client="c").reason == "bad_credentials"


def test_five_failures_for_a_user_name_lock_it_for_fifteen_minutes_even_with_the_right_password(store, op1,
                                                                                                clock):
    for i in range(5):
        assert refused(store.login, "op1", "wrong-password-123", client=f"10.0.0.{i}").reason == "bad_credentials"
    clock.advance(minutes=5)
    r = refused(store.login, "op1", PW, client="10.0.0.99")
    assert r.reason == "rate_limited" and r.retry_after_s == pytest.approx(600)
    clock.advance(minutes=10)
    assert store.login("op1", PW, client="10.0.0.99").username == "op1"


def test_twenty_failures_from_one_client_lock_that_client_only(store, op1):
    for i in range(20):
        refused(store.login, f"guess{i}", "wrong-password-123", client="10.0.0.9")
    assert refused(store.login, "op1", PW, client="10.0.0.9").reason == "rate_limited"
    assert store.login("op1", PW, client="10.0.0.8").username == "op1"


def test_the_lock_survives_a_restart(path, clock, op1, store):
    for _ in range(5):
        refused(store.login, "op1", "wrong-password-123", client="c")
    store.close()
    with AccessStore.open(path, clock=clock, hasher=CHEAP) as again:
        assert refused(again.login, "op1", PW, client="c").reason == "rate_limited"


def test_a_successful_login_clears_the_user_names_failures(store, op1):
    for _ in range(4):
        refused(store.login, "op1", "wrong-password-123", client="c")
    store.login("op1", PW, client="c")
    for _ in range(4):
        refused(store.login, "op1", "wrong-password-123", client="c")
    assert store.login("op1", PW, client="c").username == "op1"


def test_parallel_guesses_cannot_pass_the_limit_together(store, op1):
    reasons: list[str] = []

    def guess():
        try:
            store.login("op1", "wrong-password-123", client="c")
        except LoginRefused as e:
            reasons.append(e.reason)
    threads = [threading.Thread(target=guess) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(reasons) == ["bad_credentials"] * 5 + ["rate_limited"] * 7


# --------------------------------------------------------------------------- sessions
def test_a_session_ends_twelve_hours_after_login_however_busy(store, op1, clock):
    token = store.login("op1", PW, client="c").token
    for _ in range(71):
        clock.advance(minutes=10)
        assert store.session(token) is not None
    clock.advance(minutes=9, seconds=59)
    assert store.session(token) is not None
    clock.advance(seconds=1)
    assert store.session(token) is None


def test_a_session_ends_after_thirty_idle_minutes_and_use_keeps_it_alive(store, op1, clock):
    token = store.login("op1", PW, client="c").token
    clock.advance(minutes=29)
    assert store.session(token) is not None
    clock.advance(minutes=29)
    assert store.session(token) is not None      # 58 minutes after login, 29 after last use
    clock.advance(minutes=30)
    assert store.session(token) is None


def test_use_is_written_at_most_once_a_minute(store, path, op1, clock):
    token = store.login("op1", PW, client="c").token
    last_used = lambda: stored(path, "SELECT last_used FROM sessions")[0][0]  # noqa: E731
    for _ in range(5):
        clock.advance(seconds=10)
        store.session(token)
    assert last_used() == "2026-10-01T11:00:00.000Z"
    clock.advance(seconds=10)
    store.session(token)
    assert last_used() == "2026-10-01T11:01:00.000Z"


def test_logout_ends_the_session(store, op1):
    token = store.login("op1", PW, client="c").token
    store.logout(token)
    assert store.session(token) is None
    store.logout("unknown-token")                # harmless


def test_resetting_a_password_ends_the_users_sessions(store, op1):
    token = store.login("op1", PW, client="c").token
    new = store.reset_password("op1", by="admin")
    assert store.session(token) is None
    assert refused(store.login, "op1", PW, client="c").reason == "bad_credentials"
    assert store.login("op1", new, client="c").must_change_password


def test_a_disabled_users_open_session_stops_working_and_stays_ended(store, op1):
    token = store.login("op1", PW, client="c").token
    store.disable_user("op1", by="admin")
    assert store.session(token) is None
    store.enable_user("op1", by="admin")
    assert store.session(token) is None
    assert store.login("op1", PW, client="c").username == "op1"


def test_a_new_role_ends_open_sessions_and_the_next_login_has_it(store, op1):
    token = store.login("op1", PW, client="c").token
    store.set_role("op1", "supervisor", by="admin")
    assert store.session(token) is None
    assert store.login("op1", PW, client="c").role == "supervisor"
    with pytest.raises(AccessError, match="unknown role"):
        store.set_role("op1", "root", by="admin")
    with pytest.raises(AccessError, match="no user 'bob'.*scenic-twin users list"):
        store.set_role("bob", "viewer", by="admin")


def test_revoking_a_users_sessions_ends_all_of_them(store, op1):
    tokens = [store.login("op1", PW, client=f"c{i}").token for i in range(3)]
    assert store.revoke_user_sessions("op1", by="admin") == 3
    assert [store.session(t) for t in tokens] == [None] * 3


def test_the_last_active_administrator_cannot_be_disabled_or_demoted(store):
    store.bootstrap_admin()
    with pytest.raises(AccessError, match="last active administrator"):
        store.disable_user("admin", by="admin")
    with pytest.raises(AccessError, match="last active administrator"):
        store.set_role("admin", "operator", by="admin")
    store.add_user("li.na", "admin", by="admin")
    assert store.disable_user("admin", by="li.na").disabled


def test_sessions_are_safe_to_use_from_many_threads(store, op1):
    tokens = [store.login("op1", PW, client="c").token for _ in range(4)]
    errors: list[BaseException] = []

    def use(token):
        try:
            for _ in range(100):
                assert store.session(token).username == "op1"
        except BaseException as e:   # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=use, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    store.record("admin", "test.concurrent", "user", "op1")
    for t in threads:
        t.join()
    assert errors == []


# --------------------------------------------------------------------------- device tokens
def test_a_wall_screen_token_is_a_viewer_session_until_revoked(store, clock):
    token = store.issue_device_token("wall-1", by="admin")
    s = store.session(token)
    assert (s.kind, s.role, s.display_name, s.must_change_password) == ("device", "viewer", "wall-1", False)
    assert store.device_login(token, client="10.0.0.5") == token
    clock.advance(days=400)                                   # no idle or absolute end
    assert store.session(token) is not None
    assert [(d.name, d.revoked) for d in store.device_tokens()] == [("wall-1", False)]
    with pytest.raises(AccessError, match="revoke it first"):
        store.issue_device_token("wall-1", by="admin")
    assert store.revoke_device_token("wall-1", by="admin") == 1
    assert store.session(token) is None
    assert [(d.name, d.revoked) for d in store.device_tokens()] == [("wall-1", True)]
    with pytest.raises(AccessError, match="no live device token named 'wall-1'"):
        store.revoke_device_token("wall-1", by="admin")
    assert store.session(store.issue_device_token("wall-1", by="admin")).role == "viewer"


def test_a_wrong_device_token_is_refused_and_counts_against_the_client(store):
    for _ in range(20):
        assert refused(store.device_login, "guessed-token", client="10.0.0.9").reason == "bad_credentials"
    good = store.issue_device_token("wall-1", by="admin")
    assert refused(store.device_login, good, client="10.0.0.9").reason == "rate_limited"
    assert store.device_login(good, client="10.0.0.8") == good
    with pytest.raises(AccessError, match="device name"):
        store.issue_device_token("Wall 1", by="admin")


# --------------------------------------------------------------------------- first start
def test_the_first_start_creates_admin_once_with_a_one_time_password(path, clock, store):
    pw = store.bootstrap_admin()
    assert pw and len(pw) >= 16
    admin = store.user("admin")
    assert (admin.role, admin.must_change_password) == ("admin", True)
    assert store.login("admin", pw, client="c").role == "admin"
    assert store.bootstrap_admin() is None
    store.close()
    with AccessStore.open(path, clock=clock, hasher=CHEAP) as again:
        assert again.bootstrap_admin() is None


def test_no_admin_is_created_when_any_account_exists(store, op1):
    assert store.bootstrap_admin() is None and store.user("admin") is None


# --------------------------------------------------------------------------- audit
def test_every_account_change_and_security_event_is_audited_without_secrets(store, clock):
    admin_pw = store.bootstrap_admin()
    _, op_pw = store.add_user("op1", "operator", by="admin", display_name="张伟")
    store.set_role("op1", "supervisor", by="admin")
    store.disable_user("op1", by="admin")
    store.enable_user("op1", by="admin")
    reset = store.reset_password("op1", by="admin")
    store.change_password("op1", reset, "a-new-long-password-42")
    s = store.login("op1", "a-new-long-password-42", client="10.0.0.1")
    refused(store.login, "op1", "wrong-password-123", client="10.0.0.2")
    store.logout(s.token)
    store.revoke_user_sessions("op1", by="admin")
    device = store.issue_device_token("wall-1", by="admin")
    store.revoke_device_token("wall-1", by="admin")
    for _ in range(4):
        refused(store.login, "op1", "wrong-password-123", client="10.0.0.2")
    refused(store.login, "op1", "wrong-password-123", client="10.0.0.2")
    rows = store.audit_rows()
    assert [(r["actor"], r["action"], r["object_id"], r["outcome"]) for r in rows] == [
        ("system:first-start", "user.add", "admin", "ok"),
        ("admin", "user.add", "op1", "ok"),
        ("admin", "user.set_role", "op1", "ok"),
        ("admin", "user.disable", "op1", "ok"),
        ("admin", "user.enable", "op1", "ok"),
        ("admin", "user.reset_password", "op1", "ok"),
        ("op1", "user.change_password", "op1", "ok"),
        ("op1", "login", s.token_id[:12], "ok"),
        ("op1", "login", "op1", "failed"),
        ("op1", "logout", s.token_id[:12], "ok"),
        ("admin", "session.revoke_all", "op1", "ok"),
        ("admin", "device.issue", "wall-1", "ok"),
        ("admin", "device.revoke", "wall-1", "ok"),
    ] + [("op1", "login", "op1", "failed")] * 4 + [("op1", "login", "op1", "refused")]
    by_action = {r["action"]: r for r in rows}
    assert by_action["user.set_role"]["before"]["role"] == "operator"
    assert by_action["user.set_role"]["after"]["role"] == "supervisor"
    assert (by_action["user.disable"]["before"]["disabled"], by_action["user.disable"]["after"]["disabled"]) == (
        False, True)
    assert by_action["user.add"]["after"]["display_name"] == "张伟"
    assert rows[7]["client"] == "10.0.0.1" and rows[-1]["detail"]["reason"] == "rate_limited"
    assert all(r["at"] == "2026-10-01T11:00:00.000Z" for r in rows)
    text = json.dumps(rows, ensure_ascii=False)
    for secret in (admin_pw, op_pw, reset, "a-new-long-password-42", s.token, s.token_id, device):
        assert secret not in text
    assert "argon2" not in text


def test_a_callers_audit_values_lose_anything_named_like_a_secret(store):
    store.record("op1", "case.note", "case", "C-1", after={"note": "ok", "password": "hunter2hunter2",
                                                          "steps": [{"token": "abc"}]})
    row = store.audit_rows()[-1]
    assert row["after"] == {"note": "ok", "password": "[redacted]", "steps": [{"token": "[redacted]"}]}


def test_audit_rows_filter_by_time_actor_and_action_and_keep_the_newest(store):
    for h, actor, action in [(0, "op1", "alert.ack"), (1, "op2", "alert.ack"), (2, "op1", "case.open"),
                             (3, "op1", "alert.ack")]:
        store.record(actor, action, "alert", "A", at=T0 + timedelta(hours=h))
    hours = lambda rows: [int(r["at"][11:13]) - 11 for r in rows]  # noqa: E731
    assert hours(store.audit_rows()) == [0, 1, 2, 3]
    assert hours(store.audit_rows(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2))) == [1, 2]
    assert hours(store.audit_rows(actor="op1", action="alert.ack")) == [0, 3]
    assert hours(store.audit_rows(limit=2)) == [2, 3]
    assert len({r["key"] for r in store.audit_rows()}) == 4


def test_pruning_keeps_six_months_unless_told_otherwise(store, clock):
    store.record("op1", "alert.ack", "alert", "old", at=T0 - timedelta(days=200))
    store.record("op1", "alert.ack", "alert", "recent", at=T0 - timedelta(days=100))
    assert store.prune_audit() == 1
    assert [r["object_id"] for r in store.audit_rows(action="alert.ack")] == ["recent"]
    with pytest.raises(AccessError, match="six months"):
        store.prune_audit(timedelta(days=30))
    assert len(store.audit_rows(action="alert.ack")) == 1
    assert store.prune_audit(timedelta(days=30), allow_short=True, by="admin") == 1
    prunes = store.audit_rows(action="audit.prune")
    assert [(r["actor"], r["detail"]["deleted"]) for r in prunes] == [("system", 1), ("admin", 1)]


# --------------------------------------------------------------------------- durability
def test_everything_survives_closing_and_reopening(path, clock, store, op1):
    token = store.login("op1", PW, client="c").token
    device = store.issue_device_token("wall-1", by="admin")
    store.close()
    with AccessStore.open(path, clock=clock, hasher=CHEAP) as again:
        assert again.user("op1") == op1
        assert again.session(token).username == "op1" and again.session(device).kind == "device"
        assert [r["action"] for r in again.audit_rows()] == ["user.add", "login", "device.issue"]


CHILD = """
import os, signal, sys
from argon2 import PasswordHasher
from indicators.access.store import AccessStore
st = AccessStore.open(sys.argv[1], hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
st.add_user("op1", "operator", by="admin", password="riverside-patrol-2026")
print(st.login("op1", "riverside-patrol-2026", client="c").token, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_write_that_returned_survives_kill_9(store_target):
    """The child opens the SQLite file, or in the PostgreSQL pass the database's URL itself."""
    target = store_target("access")
    p = subprocess.run([sys.executable, "-c", CHILD, target], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == -signal.SIGKILL, p.stderr
    with AccessStore.open(target, hasher=CHEAP) as st:
        assert st.user("op1").role == "operator"
        assert st.session(p.stdout.strip()).username == "op1"
        assert [r["action"] for r in st.audit_rows()] == ["user.add", "login"]
