#!/usr/bin/env bash
# The whole test suite, from nothing: set up (scripts/bootstrap.sh), build, `colcon test`,
# then `colcon test-result --verbose`. Exits non-zero when any test fails.
# Extra arguments go to `colcon test` (e.g. --packages-select emotion_perception).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
# shellcheck source=env.sh
source "$ROOT/scripts/env.sh"
# Tests talk DDS on localhost only, on a domain of their own.
unset ROS_LOCALHOST_ONLY
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( RANDOM % 90 + 110 ))}"
cd "$ROOT"
rm -rf build/*/test_results
rc=0
colcon test --base-paths src --build-base build --install-base install \
  --event-handlers console_direct+ status- --return-code-on-test-failure "$@" || rc=$?
colcon test-result --test-result-base build --verbose || rc=$?
exit "$rc"
