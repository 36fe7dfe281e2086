"""The stores' database layer (indicators/sqlstore.py): versioned migrations, serialised writers.
These run on SQLite and again on PostgreSQL (SCENIC_TWIN_TEST_STORE=postgresql, see
tests/conftest.py); what only PostgreSQL has (schemas, a server that restarts or dies) is in
tests/test_pgstore.py."""
from __future__ import annotations

import threading

import pytest

from indicators import sqlstore
from indicators.access.store import AccessStore, LoginRefused
from indicators.alerts import store as ast

STEP_1 = ("CREATE TABLE IF NOT EXISTS notes (note_id TEXT PRIMARY KEY, body TEXT NOT NULL)",
          "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, content TEXT NOT NULL)")
STEP_2 = ("ALTER TABLE notes ADD COLUMN author TEXT",
          "UPDATE notes SET author = 'before-v2' WHERE author IS NULL")


def test_a_database_is_brought_up_to_date_step_by_step_and_keeps_its_rows(tmp_path):
    db = sqlstore.connect(tmp_path / "notes.sqlite", schema="notes")
    assert db.version() == 0 and db.migrate([STEP_1], store="notes") == 1
    with db.write() as cur:
        cur.execute("INSERT INTO notes (note_id, body) VALUES (?, ?)", ("n1", "kept"))
    db.close()
    db = sqlstore.connect(tmp_path / "notes.sqlite", schema="notes")     # the next program version
    assert db.migrate([STEP_1, STEP_2], store="notes") == 2 and db.version() == 2
    assert db.execute("SELECT note_id, body, author FROM notes").fetchall() == [("n1", "kept", "before-v2")]
    assert db.migrate([STEP_1, STEP_2], store="notes") == 2              # nothing left to do
    db.close()


def test_a_database_written_by_a_newer_program_is_refused_not_guessed_at(tmp_path):
    db = sqlstore.connect(tmp_path / "notes.sqlite", schema="notes")
    db.migrate([STEP_1, STEP_2], store="notes")
    db.close()
    db = sqlstore.connect(tmp_path / "notes.sqlite", schema="notes")
    with pytest.raises(sqlstore.SchemaTooNew, match="written by a newer scenic-twin.*upgrade the program"):
        db.migrate([STEP_1], store="notes")
    db.close()


def test_a_failed_step_leaves_the_database_at_its_last_version(tmp_path):
    db = sqlstore.connect(tmp_path / "notes.sqlite", schema="notes")
    db.migrate([STEP_1], store="notes")
    with pytest.raises(Exception):
        db.migrate([STEP_1, ("ALTER TABLE no_such_table ADD COLUMN x TEXT",)], store="notes")
    assert db.version() == 1
    db.close()


def test_the_shipped_stores_are_at_their_schema_version(tmp_path):
    a = ast.open_store(tmp_path / "alerts.sqlite")
    assert a._db.version() == ast.SCHEMA_VERSION == len(ast.MIGRATIONS)
    a.close()
    s = AccessStore(tmp_path / "access.sqlite")
    from indicators.access import store as acs
    assert s._db.version() == acs.SCHEMA_VERSION == len(acs.MIGRATIONS)
    s.close()


def test_parallel_guesses_from_two_processes_stores_cannot_pass_the_login_limit(tmp_path):
    """Two store objects on one database (two web workers): wrong passwords tried at once from both
    are counted one by one, so no more than the limit are let through to the password check."""
    from argon2 import PasswordHasher
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    path = tmp_path / "access.sqlite"
    stores = [AccessStore(path, hasher=fast, max_user_failures=5), AccessStore(path, hasher=fast, max_user_failures=5)]
    stores[0].add_user("target.user", "operator", by="test", password="correct horse battery staple 42")
    checked = []

    def guess(store, i):
        try:
            store.login("target.user", f"wrong-{i}", client=f"c{i}")
        except LoginRefused as e:
            checked.append(e.reason == "rate_limited")
    threads = [threading.Thread(target=guess, args=(stores[i % 2], i)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(checked) == 16
    assert checked.count(False) <= 5, "more wrong passwords checked than the limit allows"
    with pytest.raises(LoginRefused, match="rate_limited"):     # even the right one, while locked
        stores[1].login("target.user", "correct horse battery staple 42", client="c99")
    for s in stores:
        s.close()


def test_a_store_written_by_a_newer_program_is_refused_with_the_reason(store_target):
    target = store_target("access")
    AccessStore.open(target).close()
    db = sqlstore.connect(target, schema="access")
    with db.write() as cur:
        cur.execute("UPDATE meta SET content = '99' WHERE name = 'schema_version'")
    db.close()
    with pytest.raises(sqlstore.SchemaTooNew, match=r"written by a newer scenic-twin \(schema 99; this program "
                                                    r"knows up to 1\): upgrade the program"):
        AccessStore.open(target)


def test_processes_opening_a_database_at_once_apply_each_step_once(store_target):
    """Four connections (four workers starting together) bring one database from nothing to
    version 2; step 2 cannot run twice (a column added twice is an error), so each step must be
    applied by exactly one of them."""
    target = store_target("notes")
    start, errors, versions = threading.Barrier(4), [], []

    def open_one():
        db = sqlstore.connect(target, schema="notes")
        try:
            start.wait(10)
            versions.append(db.migrate([STEP_1, STEP_2], store="notes"))
        except Exception as e:        # reported below
            errors.append(e)
        finally:
            db.close()
    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and versions == [2, 2, 2, 2]
    db = sqlstore.connect(target, schema="notes")
    assert db.version() == 2 and db.execute("SELECT content FROM meta").fetchall() == [("2",)]
    db.close()
