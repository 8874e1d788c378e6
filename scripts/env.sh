# shellcheck shell=bash
# Sourced by the scripts in this folder: where the tools live and how Ansible finds this
# collection from a plain checkout.
MTLS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MTLS_VENV="${MTLS_VENV:-$MTLS_ROOT/.venv}"
# sslyze pins an older cryptography, so it has a virtual environment of its own.
MTLS_SSLYZE_VENV="${MTLS_SSLYZE_VENV:-$MTLS_ROOT/.venv-sslyze}"
MTLS_SSLYZE="$MTLS_SSLYZE_VENV/bin/sslyze"
# The publishing checkers (scripts/check-publish), and the oldest cryptography the collection
# supports; made by `MTLS_TEST_TOOLS=1 scripts/setup`.
MTLS_PUBLISH_VENV="${MTLS_PUBLISH_VENV:-$MTLS_ROOT/.venv-publish}"
MTLS_MINCRYPTO_VENV="${MTLS_MINCRYPTO_VENV:-$MTLS_ROOT/.venv-mincrypto}"
MTLS_BUILD="$MTLS_ROOT/.build"
# Ansible resolves mtls.nginx.* through this path: a link named the way Galaxy would install it.
MTLS_COLLECTIONS="$MTLS_BUILD/collections"
# Images the Molecule scenarios run; scripts/setup makes them (pulled base where a registry
# answers, debootstrap otherwise).
MTLS_IMAGE_PREFIX="${MTLS_IMAGE_PREFIX:-localhost/mtls-nginx-test}"
export MTLS_ROOT MTLS_VENV MTLS_SSLYZE_VENV MTLS_SSLYZE MTLS_PUBLISH_VENV MTLS_MINCRYPTO_VENV MTLS_BUILD MTLS_COLLECTIONS MTLS_IMAGE_PREFIX
export PATH="$MTLS_VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$MTLS_COLLECTIONS"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"
export PY_COLORS="${PY_COLORS:-0}"

# mtls_find_python MIN MAX: the newest Python interpreter whose version is in [MIN, MAX]
# (written "3,11"), from PATH or pyenv's versions; prints its path, or fails.
mtls_find_python() {
  local candidate path
  for candidate in python3.14 python3.13 python3.12 python3.11 python3.10 python3.9 python3 \
      $(printf '%s\n' "$HOME"/.pyenv/versions/3.*/bin/python3 | sort -rV); do
    path="$(command -v "$candidate" 2>/dev/null)" || continue
    if "$path" -c "import sys, ensurepip, venv
sys.exit(0 if ($1) <= sys.version_info[:2] <= ($2) else 1)" 2>/dev/null; then
      echo "$path"
      return 0
    fi
  done
  return 1
}

# Virtual environments live in MTLS_VENV_CACHE (default ~/.cache/mtls-nginx/venvs), one per
# interpreter and set of requirement files, and a checkout's .venv* are links to them: a new
# clone (CI's) uses what an earlier clone of this machine installed, as it uses the images
# scripts/setup built, instead of installing the same packages again. MTLS_VENV_CACHE= (empty)
# makes each venv inside the checkout.
MTLS_VENV_CACHE="${MTLS_VENV_CACHE-${XDG_CACHE_HOME:-$HOME/.cache}/mtls-nginx/venvs}"
export MTLS_VENV_CACHE

# mtls_requirements_hash FILE...: the hash of requirement files that a venv made from them keeps
# in VENV/.requirements.
mtls_requirements_hash() {
  cat "$@" | sha256sum | cut -c1-16
}

# mtls_venv_current VENV HASH: whether VENV exists and was made from requirement files of HASH.
mtls_venv_current() {
  [ -x "$1/bin/python" ] && [ "$(cat "$1/.requirements" 2>/dev/null)" = "$2" ]
}

# mtls_venv PYTHON VENV REQUIREMENTS [NO_DEPS_REQUIREMENTS]: makes VENV with PYTHON and installs
# the requirement files (the second with --no-deps), unless it already runs PYTHON's version and
# holds exactly those files (their hash is kept in VENV/.requirements). With MTLS_VENV_CACHE,
# VENV becomes a link to the cache's venv of that hash and interpreter, made there first when
# missing (under a lock, so that two setups at once make it once). A VENV that is out of date is
# made anew; a folder that is not a virtual environment is never removed.
mtls_venv() {
  local python="$1" venv="$2" requirements="$3" nodeps="${4:-}" hash key target
  # The interpreter a virtual environment was made from, never one inside a venv: "python3" of a
  # shell that sourced this file is .venv's own, which the rebuild below removes.
  # Its real path, so that python3 and python3.11 of one installation share a cached venv.
  python="$("$python" -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable))')" || return 1
  # VENV/.requirements holds the hash of the requirement files (scripts/check-publish reads it);
  # the cache's name for the venv adds the interpreter.
  hash="$(mtls_requirements_hash "$requirements" ${nodeps:+"$nodeps"})"
  key="$({ echo "$hash"; echo "$python"; "$python" -V 2>&1; } | sha256sum | cut -c1-16)"
  if [ -z "$MTLS_VENV_CACHE" ]; then
    [ -L "$venv" ] && { rm -f "$venv" || return 1; }
    _mtls_venv_make "$python" "$venv" "$requirements" "$nodeps" "$hash"
    return
  fi
  target="$(basename "$venv")"
  target="$MTLS_VENV_CACHE/${target#.}-$key"
  mkdir -p "$MTLS_VENV_CACHE" || return 1
  (
    flock 9 || exit 1
    _mtls_venv_make "$python" "$target" "$requirements" "$nodeps" "$hash"
  ) 9>"$target.lock" || return 1
  if [ -L "$venv" ]; then
    [ "$(readlink "$venv")" = "$target" ] && return 0
  elif [ -e "$venv" ]; then
    # A venv that an older checkout made in place.
    [ -f "$venv/pyvenv.cfg" ] || { echo "mtls_venv: $venv exists and is not a virtual environment" >&2; return 1; }
    rm -rf "$venv" || return 1
  fi
  ln -sfn "$target" "$venv"
}

# _mtls_venv_make PYTHON VENV REQUIREMENTS NO_DEPS_REQUIREMENTS HASH: mtls_venv's making, in place.
_mtls_venv_make() {
  local python="$1" venv="$2" requirements="$3" nodeps="$4" hash="$5"
  if mtls_venv_current "$venv" "$hash" && [ "$("$venv/bin/python" -V 2>&1)" = "$("$python" -V 2>&1)" ]; then
    return 0
  fi
  printf '==> creating %s with %s from %s\n' "$venv" "$("$python" -V 2>&1)" "${requirements#"$MTLS_ROOT"/}"
  if [ -e "$venv" ]; then
    [ -f "$venv/pyvenv.cfg" ] || { echo "mtls_venv: $venv exists and is not a virtual environment" >&2; return 1; }
    rm -rf "$venv"
  fi
  "$python" -m venv "$venv" &&
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" &&
    { [ -z "$nodeps" ] || "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$nodeps"; } &&
    echo "$hash" >"$venv/.requirements"
}
