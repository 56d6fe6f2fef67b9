#!/usr/bin/env bash
# Set up the Home Assistant venvs the HA tests (tests/ha/) drive: one per tested version,
# .venv-ha/<version>, with `homeassistant` plus only the requirements of the integrations
# the tests load (no default_config), and a static ffmpeg from PyPI for TTS conversion.
#
# Cached across checkouts: each venv is built once per (version, this script) in $HA_CACHE
# (~/.cache/wyoming-local-voice) and .venv-ha/<version> links to it, so a fresh CI clone on
# the same machine reuses it at once; pip's own cache makes a rebuild quicker.
# HA needs CPython 3.13 (HA_PYTHON, python3.13 on PATH, or pyenv's). Without it this fails
# in CI (CI=true) and only warns elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

HA_VERSIONS="${HA_VERSIONS:-2025.4.4 2026.2.3}"
HA_VENVS="${HA_VENVS:-.venv-ha}"
HA_CACHE="${HA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wyoming-local-voice}"
is_ci() { case "${CI:-}" in 1 | true | TRUE | True | yes) return 0 ;; *) return 1 ;; esac; }
# Progress to the terminal (fd 3) as each step starts, while a version's full pip output goes
# to its log: the versions build side by side and a build takes minutes.
exec 3>&1
STARTED=$SECONDS
say() {
  local line="Home Assistant $1 [$((SECONDS - STARTED)) s]: $2"
  echo "$line"
  echo "$line" >&3
}

find_python() {
  local candidate
  for candidate in "${HA_PYTHON:-}" "$(command -v python3.13 || true)" \
    "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.13*/bin/python3.13; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] \
      && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if ! PY313="$(find_python)"; then
  msg="CPython 3.13 not found (set HA_PYTHON or 'pyenv install 3.13.0'): Home Assistant cannot be installed"
  if is_ci; then
    echo "ERROR: $msg; the HA tests would fail." >&2
    exit 1
  fi
  echo "WARNING: $msg; the HA tests (tests/ha) will be skipped." >&2
  exit 0
fi

# A venv belongs to this script and the requirement walker: edit either, and a new one is built.
stamp() { cat scripts/setup-ha.sh tests/ha/ha_requirements.py | sha256sum | cut -c1-16; }

build() {
  local version="$1" dir="$2"
  say "$version" "building $dir with $("$PY313" --version)"
  rm -rf "$dir"
  "$PY313" -m venv "$dir"
  local pip=("$dir/bin/python" -m pip -q --disable-pip-version-check)
  say "$version" "upgrading pip"
  "${pip[@]}" install --upgrade pip
  # HA pins every dependency against its own package_constraints.txt, shipped in the wheel.
  local dl="$dir/.download"
  mkdir -p "$dl"
  say "$version" "downloading homeassistant==$version"
  "${pip[@]}" download --no-deps --ignore-requires-python -d "$dl" "homeassistant==$version"
  "$dir/bin/python" -c '
import pathlib, sys, zipfile
dl = pathlib.Path(sys.argv[1])
wheel = next(dl.glob("homeassistant-*.whl"))
(dl / "constraints.txt").write_bytes(zipfile.ZipFile(wheel).read("homeassistant/package_constraints.txt"))
' "$dl"
  # 2026.2.x declares Python >= 3.13.2 but runs on 3.13.0 (what pyenv has here).
  say "$version" "installing homeassistant and its pinned dependencies"
  "${pip[@]}" install --ignore-requires-python -c "$dl/constraints.txt" "$dl"/homeassistant-*.whl
  mapfile -t reqs < <("$dir/bin/python" tests/ha/ha_requirements.py)
  say "$version" "installing the tested integrations' requirements: ${reqs[*]} imageio-ffmpeg"
  "${pip[@]}" install --ignore-requires-python -c "$dl/constraints.txt" "${reqs[@]}" "imageio-ffmpeg>=0.5"
  say "$version" "checking the installation"
  "$dir/bin/python" -c "import homeassistant.const as c, imageio_ffmpeg; assert c.__version__ == '$version'"
  rm -rf "$dl"
  echo "$version" >"$dir/.ha-ready"
}

setup_one() {
  local version="$1" target link="$HA_VENVS/$1"
  target="$HA_CACHE/ha-$version-$(stamp)"
  # One builder per venv at a time, even across checkouts; a finished venv is never changed.
  (
    if ! flock -n 9; then
      say "$version" "waiting for another build of $target"
      flock 9
    fi
    if [ -f "$target/.ha-ready" ] && [ -x "$target/bin/python" ]; then
      say "$version" "reusing $target"
    else
      build "$version" "$target"
    fi
  ) 9>"$target.lock"
  [ -L "$link" ] || rm -rf "$link"
  ln -sfn "$target" "$link"
  echo "Home Assistant $version: ready at $link"
}

mkdir -p "$HA_VENVS" "$HA_CACHE"
# Versions build side by side: most of the time is spent waiting on downloads.
echo "Home Assistant: setting up $HA_VERSIONS in $HA_VENVS (full logs: $HA_VENVS/setup-<version>.log)"
pids=()
for version in $HA_VERSIONS; do
  setup_one "$version" >"$HA_VENVS/setup-$version.log" 2>&1 &
  pids+=("$!")
done
failed=0
i=0
for version in $HA_VERSIONS; do
  if wait "${pids[$i]}"; then
    tail -n 1 "$HA_VENVS/setup-$version.log"
  else
    echo "ERROR: setting up Home Assistant $version failed:" >&2
    grep -v "is ignored: it is neither" "$HA_VENVS/setup-$version.log" | tail -n 30 >&2
    failed=1
  fi
  i=$((i + 1))
done
exit "$failed"
