# shellcheck shell=bash
# Sourced by the scripts in this folder: where the tools live and how Ansible finds this
# collection from a plain checkout.
MTLS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MTLS_VENV="${MTLS_VENV:-$MTLS_ROOT/.venv}"
# sslyze pins an older cryptography, so it has a virtual environment of its own.
MTLS_SSLYZE_VENV="${MTLS_SSLYZE_VENV:-$MTLS_ROOT/.venv-sslyze}"
MTLS_SSLYZE="$MTLS_SSLYZE_VENV/bin/sslyze"
MTLS_BUILD="$MTLS_ROOT/.build"
# Ansible resolves mtls.nginx.* through this path: a link named the way Galaxy would install it.
MTLS_COLLECTIONS="$MTLS_BUILD/collections"
# Images the Molecule scenarios run; scripts/setup makes them (pulled base where a registry
# answers, debootstrap otherwise).
MTLS_IMAGE_PREFIX="${MTLS_IMAGE_PREFIX:-localhost/mtls-nginx-test}"
export MTLS_ROOT MTLS_VENV MTLS_SSLYZE_VENV MTLS_SSLYZE MTLS_BUILD MTLS_COLLECTIONS MTLS_IMAGE_PREFIX
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
