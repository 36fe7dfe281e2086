"""`scenic-twin users …` and `scenic-twin audit`, through the parser an administrator uses.

The commands are registered on a parser built here (what dashboard.cli does
with :func:`indicators.access.cli.register`); stores are real files.
"""
from __future__ import annotations

import argparse
import getpass
import json
from datetime import datetime, timedelta, timezone

import pytest

from indicators import sqlstore
from indicators.access.cli import register
from indicators.access.store import AccessStore
from indicators.alerts.store import open_store

T0 = datetime(2026, 10, 1, 11, 0, tzinfo=timezone.utc)
ACTOR = f"cli:{getpass.getuser()}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scenic-twin")
    register(p.add_subparsers(dest="command", required=True))
    return p


@pytest.fixture
def cli(capsys, tmp_path):
    """Run a command line against tmp_path/access.sqlite; returns (exit code, stdout, stderr)."""
    store = tmp_path / "access.sqlite"

    def run(*argv: str, store_option: bool = True):
        args = parser().parse_args([*argv, *(["--store", str(store)] if store_option else [])])
        code = args.func(args)
        out, err = capsys.readouterr()
        return code, out, err
    run.store = store
    return run


def login(path, user, password):
    with AccessStore.open(path) as st:
        return st.login(user, password, client="test")


# --------------------------------------------------------------------------- users
def test_adding_a_user_prints_the_one_time_password_once_as_the_last_line(cli):
    code, out, err = cli("users", "add", "op1", "--role", "operator", "--display-name", "张伟")
    password = out.strip().splitlines()[-1]
    assert code == 0 and len(password) >= 16 and out.count(password) == 1 and password not in err
    assert "must be changed at the first login" in out and "Operator (调度员)" in out
    s = login(cli.store, "op1", password)
    assert (s.role, s.display_name, s.must_change_password) == ("operator", "张伟", True)
    with AccessStore.open(cli.store) as st:
        assert [(r["actor"], r["action"], r["object_id"]) for r in st.audit_rows(action="user.add")] == [
            (ACTOR, "user.add", "op1")]


def test_without_store_option_the_accounts_live_in_the_var_folder(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SCENIC_TWIN_VAR", str(tmp_path / "var"))
    assert cli("users", "add", "op1", "--role", "viewer", store_option=False)[0] == 0
    assert (tmp_path / "var" / "access.sqlite").exists()
    assert "op1" in cli("users", "list", store_option=False)[1]


def test_listing_users_shows_role_names_and_never_a_hash(cli):
    cli("users", "add", "op1", "--role", "supervisor", "--display-name", "李娜")
    cli("users", "add", "wall.viewer", "--role", "viewer")
    code, out, _ = cli("users", "list", "--json")
    users = json.loads(out)
    assert code == 0 and [u["username"] for u in users] == ["op1", "wall.viewer"]
    assert users[0]["role"] == "supervisor" and users[0]["role_name"] == {"zh": "值班主管", "en": "Supervisor"}
    assert users[0]["display_name"] == "李娜" and users[0]["must_change_password"] is True
    _, text, _ = cli("users", "list")
    for shown in (out, text):
        assert "argon2" not in shown and "hash" not in shown
    assert "Supervisor (值班主管)" in text and "Wall viewer (值守大屏)" in text


def test_listing_a_store_that_does_not_exist_says_where_it_looked_and_creates_nothing(cli):
    code, out, err = cli("users", "list")
    assert code == 2 and out == "" and str(cli.store) in err and "--store" in err
    assert not sqlstore.exists(cli.store, schema="access")


def test_disable_enable_set_role_and_reset_password_change_the_account_and_end_sessions(cli):
    first = cli("users", "add", "op1", "--role", "operator")[1].strip().splitlines()[-1]
    token = login(cli.store, "op1", first).token
    assert cli("users", "disable", "op1")[0] == 0
    with AccessStore.open(cli.store) as st:
        assert st.user("op1").disabled and st.session(token) is None
    assert cli("users", "enable", "op1")[0] == 0
    token = login(cli.store, "op1", first).token
    code, out, _ = cli("users", "set-role", "op1", "supervisor")
    assert code == 0 and "Supervisor (值班主管)" in out
    token = login(cli.store, "op1", first).token
    code, out, _ = cli("users", "reset-password", "op1")
    new = out.strip().splitlines()[-1]
    assert code == 0 and new != first and out.count(new) == 1
    with AccessStore.open(cli.store) as st:
        assert st.session(token) is None and st.user("op1").role == "supervisor"
        assert [(r["actor"], r["action"]) for r in st.audit_rows()[1:] if r["action"].startswith("user.")] == [
            (ACTOR, "user.disable"), (ACTOR, "user.enable"), (ACTOR, "user.set_role"),
            (ACTOR, "user.reset_password")]
    assert login(cli.store, "op1", new).must_change_password


@pytest.mark.parametrize("argv", [["disable", "bob"], ["enable", "bob"], ["reset-password", "bob"],
                                  ["set-role", "bob", "viewer"]])
def test_an_unknown_user_is_an_error_that_says_how_to_list_them(cli, argv):
    cli("users", "add", "op1", "--role", "operator")
    code, out, err = cli("users", *argv)
    assert code == 2 and out == ""
    assert "no user 'bob': list them with `scenic-twin users list`" in err


def test_a_bad_name_a_duplicate_and_a_bad_role_are_refused(cli, capsys):
    code, _, err = cli("users", "add", "Zhang Wei", "--role", "operator")
    assert code == 2 and "lower-case letters" in err
    cli("users", "add", "op1", "--role", "operator")
    code, _, err = cli("users", "add", "op1", "--role", "viewer")
    assert code == 2 and "exists" in err
    with pytest.raises(SystemExit) as e:
        cli("users", "add", "op2", "--role", "root")
    assert e.value.code == 2 and "invalid choice: 'root'" in capsys.readouterr().err


def test_a_wall_screen_token_is_printed_once_listed_and_revoked(cli):
    code, out, _ = cli("users", "device-token", "wall-1")
    token = out.strip().splitlines()[-1]
    assert code == 0 and out.count(token) == 1
    with AccessStore.open(cli.store) as st:
        assert st.session(token).role == "viewer"
    devices = json.loads(cli("users", "devices", "--json")[1])
    assert [(d["name"], d["revoked"]) for d in devices] == [("wall-1", False)]
    assert token not in json.dumps(devices)
    assert cli("users", "revoke-device", "wall-1")[0] == 0
    with AccessStore.open(cli.store) as st:
        assert st.session(token) is None
    code, _, err = cli("users", "revoke-device", "wall-1")
    assert code == 2 and "scenic-twin users devices" in err


# --------------------------------------------------------------------------- audit
def two_trails(tmp_path):
    """An account store and an alert store with interleaved audit rows."""
    with AccessStore.open(tmp_path / "access.sqlite") as st:
        st.record("admin", "user.add", "user", "op1", at=T0, after={"role": "operator"})
        st.record("op1", "login", "session", "abc", at=T0 + timedelta(minutes=2), client="10.0.0.1")
    with open_store(tmp_path / "alerts.sqlite") as al:
        al.save_threshold_version({"override": {}}, author="li", comment="first", at=T0 + timedelta(minutes=1))
        al.save_threshold_version({"override": {}}, author="op1", comment="second", at=T0 + timedelta(minutes=3))


def test_the_audit_merges_the_account_and_alert_trails_in_time_order(cli, tmp_path):
    two_trails(tmp_path)
    code, out, _ = cli("audit", "--json")
    rows = json.loads(out)
    assert code == 0
    assert [(r["trail"], r["actor"], r["action"]) for r in rows] == [
        ("access", "admin", "user.add"), ("alerts", "user:li", "save_thresholds"),
        ("access", "op1", "login"), ("alerts", "user:op1", "save_thresholds")]
    assert rows[0]["after"] == {"role": "operator"} and rows[1]["detail"] == {"comment": "first"}
    assert rows[2]["client"] == "10.0.0.1"
    _, text, _ = cli("audit")
    assert [line.split()[1] for line in text.splitlines()] == ["access", "alerts", "access", "alerts"]


def test_the_audit_filters_both_trails(cli, tmp_path):
    two_trails(tmp_path)
    rows = lambda *a: [(r["trail"], r["action"]) for r in json.loads(cli("audit", "--json", *a)[1])]  # noqa
    assert rows("--since", "2026-10-01T19:02+08:00") == [("access", "login"), ("alerts", "save_thresholds")]
    assert rows("--actor", "user:li") == [("alerts", "save_thresholds")]
    assert rows("--action", "login") == [("access", "login")]
    assert rows("--limit", "1") == [("alerts", "save_thresholds")]


def test_the_audit_skips_a_store_that_does_not_exist_without_creating_it(cli, tmp_path):
    code, out, err = cli("audit", "--json")
    assert code == 0 and json.loads(out) == [] and "no account store" in err and "no alert store" in err
    assert not sqlstore.exists(tmp_path / "access.sqlite", schema="access")
    assert not sqlstore.exists(tmp_path / "alerts.sqlite", schema="area_canton-tower")
    with open_store(tmp_path / "elsewhere.sqlite") as al:
        al.save_threshold_version({}, author="li", comment="x", at=T0)
    code, out, _ = cli("audit", "--json", "--alerts-store", str(tmp_path / "elsewhere.sqlite"))
    assert [r["trail"] for r in json.loads(out)] == ["alerts"]


def test_pruning_from_the_command_line_keeps_six_months(cli, tmp_path):
    now = datetime.now(timezone.utc)
    with AccessStore.open(tmp_path / "access.sqlite") as st:
        st.record("op1", "alert.ack", "alert", "old", at=now - timedelta(days=200))
        st.record("op1", "alert.ack", "alert", "recent", at=now - timedelta(days=100))
    code, _, err = cli("audit", "--prune", "--retention-days", "30")
    assert code == 2 and "six months" in err
    code, out, err = cli("audit", "--prune", "--json", "--action", "alert.ack")
    assert code == 0 and "pruned 1" in err
    assert [r["object_id"] for r in json.loads(out)] == ["recent"]


def test_a_since_without_a_time_zone_is_refused(cli, capsys):
    with pytest.raises(SystemExit) as e:
        cli("audit", "--since", "2026-10-01T08:00")
    assert e.value.code == 2 and "needs a time zone" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["users"], ["users", "add"], ["users", "list"], ["users", "devices"],
                                  ["users", "disable"], ["users", "enable"], ["users", "reset-password"],
                                  ["users", "set-role"], ["users", "device-token"], ["users", "revoke-device"],
                                  ["audit"]])
def test_every_command_explains_itself(argv, capsys):
    with pytest.raises(SystemExit) as e:
        parser().parse_args([*argv, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith("usage: scenic-twin " + " ".join(argv))
    description = out.split("\n\n")[1]
    assert not description.startswith(("positional arguments:", "options:"))
