# Source this file to put the venv and the built workspace on the current shell:
#   source scripts/env.sh
# Works with a sourced ROS 2 installation (underlay) or with the PyPI wheels in the venv.
_EP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_EP_VENV="${EP_VENV:-$_EP_ROOT/.venv}"
if [ ! -x "$_EP_VENV/bin/python" ]; then
  echo "emotion_perception: no venv at $_EP_VENV; run scripts/bootstrap.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
export VIRTUAL_ENV="$_EP_VENV"
export PATH="$_EP_VENV/bin:$PATH"
if [ -z "${ROS_DISTRO:-}" ]; then
  # PyPI wheels: the venv is the ROS 2 underlay.
  export AMENT_PREFIX_PATH="$_EP_VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$_EP_VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
fi
# Keep DDS traffic on this machine unless the user chose otherwise (do not mix with the
# deprecated ROS_LOCALHOST_ONLY: the two together break discovery).
if [ -z "${ROS_LOCALHOST_ONLY:-}" ]; then
  export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
if [ -z "${EP_SKIP_WORKSPACE:-}" ] && [ -f "$_EP_ROOT/install/local_setup.bash" ]; then
  # colcon's setup scripts read unset variables: relax `set -u` while sourcing them
  case $- in *u*) _EP_NOUNSET=1; set +u ;; *) _EP_NOUNSET= ;; esac
  # shellcheck disable=SC1091
  source "$_EP_ROOT/install/local_setup.bash"
  [ -n "$_EP_NOUNSET" ] && set -u
  unset _EP_NOUNSET
  # console scripts (ros2 run's executables) callable by name where ros2cli is missing
  export PATH="$_EP_ROOT/install/emotion_perception/lib/emotion_perception:$_EP_ROOT/install/emotion_training/lib/emotion_training:$PATH"
fi
unset _EP_ROOT _EP_VENV
