# Sourced by the scripts that need Python packages from PyPI.
# ensure_venv PKG... : makes $venv (a python3 venv) hold PKG...; returns 1 when
# python3, venv or pip is missing or PyPI cannot be reached.
ensure_venv() {
  command -v python3 >/dev/null 2>&1 || { echo "note: python3 not found" >&2; return 1; }
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >/dev/null 2>&1 || { echo "note: python3 venv/pip not available" >&2; rm -rf "$venv"; return 1; }
  fi
  "$venv/bin/python" -m pip --version >/dev/null 2>&1 || { echo "note: pip not available in $venv" >&2; return 1; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >/dev/null 2>&1 \
    || { echo "note: could not install $* from PyPI" >&2; return 1; }
}
