# Shared by scripts/run and scripts/test (sourced, not run).  Creates .venv
# and installs scenic-twin into it; safe to run again (it only adds what is
# missing).  Needs Python >= 3.11; on a fresh Debian it installs python3-venv
# when the interpreter cannot create a virtual environment.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"

step() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "'$*' needs root: run this script as root or install sudo"; fi
}

apt_install() {   # apt_install PKG... : installs the Debian packages that are missing
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them with your package manager"
  step "installing Debian packages: ${missing[*]}"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${missing[@]}"
}

command -v "$PY" >/dev/null || die "$PY not found: install Python 3.11 or set PYTHON=/path/to/python3.11"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python >= 3.11 is needed, $PY is $("$PY" -V 2>&1): set PYTHON=/path/to/python3.11"

if [ ! -x .venv/bin/python ]; then
  step "creating the virtual environment .venv"
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv
    "$PY" -m venv .venv
  fi
fi

# Debian libraries the installed Python packages load and a minimal Debian lacks:
#   libgomp1   libgomp.so.1, numba's OpenMP threading layer (the engine's compiled kernels)
RUN_DEBIAN_PACKAGES=(libgomp1)

install_project() {   # install_project EXTRAS  ("" or "[test]")
  apt_install "${RUN_DEBIAN_PACKAGES[@]}"
  step "installing scenic-twin$1 and its dependencies into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install --disable-pip-version-check -q --upgrade pip
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar on -q -e ".$1"
}
