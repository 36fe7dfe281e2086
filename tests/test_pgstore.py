"""What only the PostgreSQL store has: a schema per area and one for the accounts, a server that
restarts under an open store or dies, and the local server itself (indicators/pgserver.py).

These run in the ordinary pass, against the session's throwaway server (tests/conftest.py
``pg_server``) or, when they stop or kill it, against one of their own.  The store behaviour
shared with SQLite runs on PostgreSQL in the second pass of ./scripts/test (marker ``store``).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime, timezone

import psycopg
import pytest

from indicators import pgserver, sqlstore
from indicators.access.store import AccessStore
from indicators.alerts import store as ast

AT = datetime(2026, 10, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def own_server():
    """A server this test may stop, restart or kill."""
    where = tempfile.mkdtemp(prefix="scenic-pg-own-")
    server = pgserver.PgServer(where)
    try:
        yield server.start().ready()
    finally:
        server.stop()
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def database(pg_server, request):
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    url = pg_server.create_database(name)
    yield url
    pg_server.drop_database(name)


def test_each_area_and_the_accounts_live_in_their_own_schema(database):
    home = ast.open_store(database)                                  # the default area
    copy = ast.open_store(database, area="canton-tower-copy-2")
    access = AccessStore.open(database)
    home.save_threshold_version({"override": {}}, author="sup", comment="home only", at=AT)
    access.record("admin", "user.add", "user", "op1")
    assert [v.comment for v in home.threshold_versions()] == ["home only"]
    assert copy.threshold_versions() == [] and copy.audit() == []     # the other area sees nothing
    assert [r["action"] for r in access.audit_rows()] == ["user.add"]  # and neither audit the other's
    assert len(home.audit()) == 1
    with psycopg.connect(database) as c:
        tables = c.execute("SELECT table_schema, table_name FROM information_schema.tables "
                           "WHERE table_name IN ('audit', 'meta') ORDER BY 1, 2").fetchall()
        versions = {schema: c.execute(f'SELECT content FROM "{schema}".meta WHERE name = %s',
                                      ("schema_version",)).fetchone()[0]
                    for schema in ("access", "area_canton_tower", "area_canton_tower_copy_2")}
    assert tables == [(s, t) for s in ("access", "area_canton_tower", "area_canton_tower_copy_2")
                      for t in ("audit", "meta")]
    assert versions == {"access": "1", "area_canton_tower": "1", "area_canton_tower_copy_2": "1"}
    for st in (home, copy, access):
        st.close()


def test_an_area_id_maps_to_one_schema_and_nothing_else_is_accepted():
    assert sqlstore.schema_name("area_canton-tower-copy-2") == "area_canton_tower_copy_2"
    for bad in ('x"; DROP SCHEMA access; --', "area one", "a" * 64):
        with pytest.raises(ValueError, match="cannot name a PostgreSQL schema"):
            sqlstore.schema_name(bad)


def test_a_schema_made_by_the_operator_is_used_as_it_is(database):
    """A DBA may create the schemas and give the program no CREATE on the database."""
    with psycopg.connect(database, autocommit=True) as c:
        c.execute("CREATE SCHEMA area_baiyun_mountain")
    with ast.open_store(database, area="baiyun-mountain") as st:
        assert st.counts()["audit"] == 0 and st.meta("schema_version") == "1"


def test_an_open_store_carries_on_after_a_server_restart_and_says_so_when_it_stays_down(own_server):
    url = own_server.create_database("restarts")
    alerts = ast.open_store(url)
    access = AccessStore.open(url)
    alerts.save_threshold_version({"override": {}}, author="sup", comment="v1", at=AT)
    own_server.stop()                                  # every connection of the stores is ended
    own_server.start().ready()
    alerts.save_threshold_version({"override": {}}, author="sup", comment="v2", at=AT)   # a write first
    access.record("admin", "user.add", "user", "op1")
    own_server.stop()
    own_server.start().ready()
    assert [v.comment for v in alerts.threshold_versions()] == ["v1", "v2"]               # a read first
    alerts.ping()
    own_server.stop()
    for call in (alerts.ping, alerts.threshold_versions, lambda: access.audit_rows(),
                 lambda: alerts.save_threshold_version({}, author="sup", comment="v3", at=AT)):
        with pytest.raises(ConnectionError, match=r"PostgreSQL .*127\.0\.0\.1.*was lost .* opening it again "
                                                  r"failed: .*check that the server runs"):
            call()
    own_server.start().ready()
    assert [r["action"] for r in access.audit_rows()] == ["user.add"]
    assert [v.version for v in alerts.threshold_versions()] == [1, 2]
    alerts.close()
    access.close()


def test_a_write_that_returned_survives_kill_9_of_the_whole_server(own_server):
    url = own_server.create_database("crash")
    store = ast.open_store(url, area="canton-tower")
    for i in range(20):
        store.save_threshold_version({"override": {}}, author=f"sup{i}", comment=f"v{i}", at=AT)
    own_server.kill()                                  # the postmaster and its backends, SIGKILL: no checkpoint
    own_server.start().ready()
    assert [v.version for v in store.threshold_versions()] == list(range(1, 21))   # the same store, reconnected
    store.close()


def test_a_statement_error_is_not_taken_for_a_lost_connection(database):
    """Only a connection that is gone is opened again; a wrong statement raises as it is, and
    the store goes on working."""
    st = ast.open_store(database)
    with pytest.raises(psycopg.errors.UndefinedTable):
        st._query("SELECT * FROM no_such_table")
    with pytest.raises(psycopg.errors.UndefinedTable):
        with st._tx() as cur:
            cur.execute("DELETE FROM no_such_table")
    assert st.counts()["threshold_versions"] == 0
    st.close()


def test_without_the_binaries_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(pgserver.glob, "glob", lambda pattern: [])
    with pytest.raises(FileNotFoundError, match=r"install Debian's postgresql package \(./scripts/test installs it"):
        pgserver.PgServer(tempfile.gettempdir())


def test_databases_come_and_go(pg_server):
    url = pg_server.create_database("come_and_go")
    assert url == pg_server.url_of("come_and_go") and url.startswith("postgresql://")
    held = psycopg.connect(url)                        # a session still open does not stop the drop
    pg_server.drop_database("come_and_go")
    held.close()
    with psycopg.connect(pg_server.url) as c:
        assert c.execute("SELECT COUNT(*) FROM pg_database WHERE datname = 'come_and_go'").fetchone()[0] == 0
    with pytest.raises(ValueError):
        pg_server.create_database('x"; DROP DATABASE postgres; --')


def test_errors_name_the_server_but_never_the_password():
    with pytest.raises(ConnectionError, match=r"cannot open the PostgreSQL store at postgresql://…@127\.0\.0\.1:1/x"
                                              r".*check that the server runs") as e:
        sqlstore.connect("postgresql://scenic:s3cret-pw@127.0.0.1:1/x?password=s3cret-pw", schema="access")
    assert "s3cret-pw" not in str(e.value)


def test_a_url_that_went_through_a_file_path_is_refused_not_made_a_sqlite_file(tmp_path, monkeypatch):
    from pathlib import Path
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="PostgreSQL URL that lost a slash"):
        AccessStore.open(Path("postgresql://scenic:pw@db.example:5432/platform"))
    assert list(tmp_path.iterdir()) == []


def test_a_closed_store_stays_closed(database):
    st = ast.open_store(database)
    st.close()
    with pytest.raises(psycopg.OperationalError, match="closed"):
        st.threshold_versions()


def test_options_of_the_url_are_kept_beside_the_stores_own(database):
    st = ast.open_store(database + "?options=-c%20statement_timeout%3D4321")
    assert st._query("SHOW statement_timeout") == [("4321ms",)]
    assert st._query("SHOW search_path") == [("area_canton_tower",)]
    st.close()


def test_the_command_line_tools_take_the_platforms_url_and_area(database, capsys, monkeypatch):
    """An SRE runs `users`, `thresholds`, `alerts` and `audit` against the platform's PostgreSQL
    (SCENIC_TWIN_STORE or --store URL, --area), not only against the state folder's files."""
    from dashboard.cli import main
    monkeypatch.setenv("SCENIC_TWIN_STORE", database)
    monkeypatch.delenv("SCENIC_TWIN_AREA", raising=False)
    assert main(["users", "add", "op1", "--role", "operator"]) == 0
    assert "op1" in capsys.readouterr().out
    assert main(["users", "list", "--json"]) == 0
    assert [u["username"] for u in json.loads(capsys.readouterr().out)] == ["op1"]
    # nothing saved for the area yet: read commands say where they looked and create nothing
    assert main(["alerts", "--area", "canton-tower-copy-2"]) == 2
    err = capsys.readouterr().err
    assert "no alert store at" in err and "canton-tower-copy-2" in err and "password" not in err
    assert not sqlstore.exists(database, schema="area_canton-tower-copy-2")
    east = "crowd.load_rate:zone=riverside_east@now"
    assert main(["thresholds", "set", east, "--tier", "red=97", "--reason", "light show", "--by", "li.na",
                 "--store", database, "--area", "canton-tower-copy-2"]) == 0
    capsys.readouterr()
    assert main(["thresholds", "versions", "--json", "--area", "canton-tower-copy-2"]) == 0
    assert [v["version"] for v in json.loads(capsys.readouterr().out)] == [1]
    assert main(["thresholds", "versions", "--json"]) == 0          # the home area has none of it
    assert json.loads(capsys.readouterr().out) == []
    assert main(["audit", "--json", "--area", "canton-tower-copy-2"]) == 0
    trails = {(r["trail"], r["action"]) for r in json.loads(capsys.readouterr().out)}
    assert ("access", "user.add") in trails and ("alerts", "save_thresholds") in trails
    assert ("access", "thresholds.save") in trails    # the save is in the accounts' audit too
