"""The fresh-machine promise: after ``./scripts/test`` the test tools start on a
minimal Debian 12 (python3, venv, pip, git and curl, nothing else).

It once did not: Playwright's bundled node needs ``libatomic.so.1`` (Debian
package ``libatomic1``), which no package of scripts/test pulled in, so on a
minimal machine every browser test errored while developers' machines, where
a compiler had brought libatomic1 along, were green.  Two checks here:

* every ELF file the test tooling executes — Playwright's bundled node,
  Debian's real Chromium binary and the shared objects beside it,
  chromedriver, the PostgreSQL server of the store tests (initdb, pg_ctl,
  postgres) — is run through ``ldd``; a "not found" library fails, named
  with the Debian package that provides it;
* every library those files load comes from a package that a minimal Debian
  has (``shared/hooks/minimal-debian-packages.txt``) or that
  ``TEST_DEBIAN_PACKAGES`` of scripts/test installs, directly or as a hard
  dependency.  This one fails on a full developer machine too, which is the
  point: it finds the next libatomic1 before a fresh machine does.

``scripts/check-minimal`` runs this file inside a real debootstrap'd minimal
Debian after the install steps (not in CI: it needs root and ~10 minutes).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "test"
CHROMIUM_LAUNCHER = Path("/usr/bin/chromium")
CHROMIUM_DIR = Path("/usr/lib/chromium")  # Debian's layout: the launcher script execs chromium here

# Libraries we have met missing, and the Debian 12 package that provides each.
LIBRARY_PACKAGES = {
    "libatomic.so.1": "libatomic1",
    "libnss3.so": "libnss3",
    "libnssutil3.so": "libnss3",
    "libsmime3.so": "libnss3",
    "libnspr4.so": "libnspr4",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libgio-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libexpat.so.1": "libexpat1",
    "libX11.so.6": "libx11-6",
    "libxcb.so.1": "libxcb1",
    "libdrm.so.2": "libdrm2",
    "libgbm.so.1": "libgbm1",
    "libasound.so.2": "libasound2",
    "libcups.so.2": "libcups2",
    "libxkbcommon.so.0": "libxkbcommon0",
}


# --------------------------------------------------------------------------- helpers
def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def parse_ldd(text: str) -> tuple[dict[str, str], list[str]]:
    """``ldd`` output as (library name -> resolved path, names not found)."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for line in text.splitlines():
        name, arrow, target = line.strip().partition(" => ")
        if not arrow:
            continue
        if target.startswith("not found"):
            missing.append(name)
        else:
            path = target.rpartition(" (")[0] or target
            if path.startswith("/"):
                found[name] = path
    return found, missing


def ldd(path: Path) -> tuple[dict[str, str], list[str]]:
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=60)
    return parse_ldd(out.stdout)


def missing_report(missing: dict[str, list[str]]) -> str:
    """One line per binary: each missing library with the package providing it."""
    lines = []
    for binary, libs in missing.items():
        named = [f"{lib} (Debian package {LIBRARY_PACKAGES[lib]})" if lib in LIBRARY_PACKAGES
                 else f"{lib} (package unknown: `apt-file search {lib}` names it)" for lib in libs]
        lines.append(f"{binary} cannot load: " + ", ".join(named))
    return "\n".join(lines)


def tool_binaries() -> dict[str, list[Path]]:
    """The ELF files the test tooling executes, per tool; fails when a tool is absent."""
    try:
        import playwright
    except ImportError:
        pytest.fail("playwright is not installed in this environment: run ./scripts/test", pytrace=False)
    node = Path(playwright.__file__).parent / "driver" / "node"
    if not is_elf(node):
        pytest.fail(f"Playwright's bundled node is not at {node}", pytrace=False)
    if not CHROMIUM_LAUNCHER.exists() or not is_elf(CHROMIUM_DIR / "chromium"):
        pytest.fail(f"{CHROMIUM_LAUNCHER} or its real binary {CHROMIUM_DIR / 'chromium'} is missing: "
                    "run ./scripts/test (it installs Debian chromium)", pytrace=False)
    chromium = [CHROMIUM_LAUNCHER] if is_elf(CHROMIUM_LAUNCHER) else []
    chromium += sorted(p for p in CHROMIUM_DIR.iterdir() if p.is_file() and is_elf(p) and p.name != "chromedriver")
    driver = shutil.which("chromedriver")
    if driver is None or not is_elf(Path(os.path.realpath(driver))):
        pytest.fail("chromedriver is missing: run ./scripts/test (it installs Debian chromium-driver)",
                    pytrace=False)
    try:
        from indicators.pgserver import pg_bin
        pg = pg_bin()
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)
    return {"playwright node": [node], "chromium": chromium, "chromedriver": [Path(os.path.realpath(driver))],
            "postgresql": [pg / "initdb", pg / "pg_ctl", pg / "postgres"]}


def script_packages(text: str) -> list[str]:
    """The packages of the one ``TEST_DEBIAN_PACKAGES=(…)`` line of scripts/test."""
    defs = re.findall(r"^TEST_DEBIAN_PACKAGES=\(([^)]*)\)", text, re.M)
    assert len(defs) == 1, f"scripts/test must define TEST_DEBIAN_PACKAGES exactly once, found {len(defs)}"
    return shlex.split(defs[0])


def apt_calls(text: str) -> list[str]:
    """Lines of a shell script that install Debian packages (comments left out)."""
    code = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    return [ln for ln in code if re.search(r"\bapt_install\b(?!\s*\()|\bapt(-get)?\s+install\b", ln)]


def owners(paths: list[str]) -> dict[str, str]:
    """Library path -> owning Debian package (without the architecture)."""
    candidates = {}
    for p in paths:
        real = os.path.realpath(p)
        alt = [p, real]
        for q in (p, real):
            alt.append(q[4:] if q.startswith("/usr/") else "/usr" + q)
        candidates[p] = list(dict.fromkeys(alt))
    query = sorted({c for cs in candidates.values() for c in cs})
    out = subprocess.run(["dpkg-query", "-S", *query], capture_output=True, text=True, timeout=120).stdout
    by_path = {}
    for line in out.splitlines():
        pkgs, _, path = line.partition(": ")
        for pkg in pkgs.split(", "):
            by_path.setdefault(path.strip(), pkg.split(":")[0])
    return {p: next((by_path[c] for c in cs if c in by_path), "") for p, cs in candidates.items()}


def hard_dependency_closure(packages: list[str]) -> set[str]:
    """The packages apt installs at least for ``packages``: Depends and
    Pre-Depends, recursively (Recommends left out: they can be switched off)."""
    out = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
         "--no-breaks", "--no-replaces", "--no-enhances", *packages],
        capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        pytest.fail(f"apt-cache cannot resolve {packages}: {out.stderr.strip()} (run apt-get update)",
                    pytrace=False)
    return {ln.strip().split(":")[0] for ln in out.stdout.splitlines() if ln and not ln[0].isspace()}


# --------------------------------------------------------------------------- tests
def test_parse_ldd_reads_found_missing_and_loader_lines():
    text = ("\tlinux-vdso.so.1 (0x00007ffd)\n"
            "\tlibatomic.so.1 => not found\n"
            "\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f01)\n"
            "\t/lib64/ld-linux-x86-64.so.2 (0x00007f02)\n")
    assert parse_ldd(text) == ({"libm.so.6": "/lib/x86_64-linux-gnu/libm.so.6"}, ["libatomic.so.1"])


def test_a_missing_library_is_named_with_its_package():
    report = missing_report({"node": ["libatomic.so.1", "libscenic.so.9"]})
    assert "libatomic.so.1 (Debian package libatomic1)" in report
    assert "libscenic.so.9 (package unknown" in report


def test_ldd_check_catches_a_real_binary_with_a_missing_library(tmp_path):
    """A real ELF whose needed libc is renamed to a library no machine has:
    the check must report it (so a green run means something)."""
    src = Path("/bin/true").read_bytes()
    assert src.count(b"libc.so.6\x00") == 1
    broken = tmp_path / "true-without-libc"
    broken.write_bytes(src.replace(b"libc.so.6\x00", b"libq.so.6\x00"))
    broken.chmod(0o755)
    found, missing = ldd(broken)
    assert missing == ["libq.so.6"] and "libc.so.6" not in found


@pytest.mark.parametrize("tool", ["playwright node", "chromium", "chromedriver", "postgresql"])
def test_tool_finds_every_library(tool):
    binaries = tool_binaries()[tool]
    missing = {}
    for b in binaries:
        _, miss = ldd(b)
        if miss:
            missing[str(b)] = miss
    assert not missing, ("the test tooling cannot start here:\n" + missing_report(missing)
                         + "\nadd the package(s) to TEST_DEBIAN_PACKAGES in scripts/test")


def test_every_library_comes_from_a_package_of_a_minimal_debian_or_scripts_test(td):
    """Each library the tools load is owned by a package that a minimal Debian
    has or that scripts/test installs (with its hard dependencies)."""
    baseline_file = td.parent / "hooks" / "minimal-debian-packages.txt"
    if not baseline_file.is_file():
        pytest.fail(f"{baseline_file} is missing: the list of a minimal Debian's packages", pytrace=False)
    baseline = {ln.strip() for ln in baseline_file.read_text().splitlines() if ln.strip()}
    wanted = script_packages(SCRIPT.read_text())
    allowed = baseline | hard_dependency_closure(wanted)
    loaded: dict[str, set[str]] = {}
    for tool, binaries in tool_binaries().items():
        for b in binaries:
            for path in ldd(b)[0].values():
                loaded.setdefault(path, set()).add(tool)
    owner = owners(sorted(loaded))
    problems = []
    for path, tools in sorted(loaded.items()):
        pkg = owner[path]
        if not pkg:
            problems.append(f"{path} (loaded by {', '.join(sorted(tools))}) belongs to no Debian package")
        elif pkg not in allowed:
            problems.append(f"{path} (loaded by {', '.join(sorted(tools))}) comes from {pkg}, which a minimal "
                            f"Debian lacks and no package of TEST_DEBIAN_PACKAGES pulls in: add {pkg}")
    assert not problems, "\n".join(problems)


def test_debian_packages_are_named_in_one_place():
    """scripts/test installs Debian packages in one call, from TEST_DEBIAN_PACKAGES;
    what the shared setup installs (python3-venv, to create .venv) is a package a
    minimal Debian already has."""
    text = SCRIPT.read_text()
    wanted = script_packages(text)
    assert wanted and len(wanted) == len(set(wanted)), wanted
    assert apt_calls(text) == ['apt_install "${TEST_DEBIAN_PACKAGES[@]}"'], apt_calls(text)
    known = set(LIBRARY_PACKAGES.values())
    assert "libatomic1" in wanted and "libatomic1" in known
    sourced = re.findall(r'^source\s+"\$\(dirname "\$0"\)/([\w.-]+)"', text, re.M)
    assert sourced == ["_setup.sh"], sourced
    setup = apt_calls((SCRIPT.parent / "_setup.sh").read_text())
    generic = [ln for ln in setup if not ln.startswith("apt_install ")]
    assert all('"${missing[@]}"' in ln for ln in generic), generic  # the body of apt_install itself
    elsewhere = [arg for ln in setup if ln.startswith("apt_install ") for arg in shlex.split(ln)[1:]]
    assert elsewhere == ["python3-venv", "${RUN_DEBIAN_PACKAGES[@]}"], (
        f"scripts/_setup.sh installs {elsewhere}: Debian packages for the tests belong in "
        "TEST_DEBIAN_PACKAGES of scripts/test, libraries the installed packages load in RUN_DEBIAN_PACKAGES")
    # the main job's libraries (scripts/run installs them too): named once, none of them a test tool
    runs = re.findall(r"^RUN_DEBIAN_PACKAGES=\(([^)]*)\)", (SCRIPT.parent / "_setup.sh").read_text(), re.M)
    assert len(runs) == 1, runs
    run_pkgs = runs[0].split()
    assert run_pkgs and not set(run_pkgs) & set(wanted), (run_pkgs, wanted)
    assert all(p.startswith("lib") for p in run_pkgs), run_pkgs
