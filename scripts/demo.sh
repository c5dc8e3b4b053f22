#!/usr/bin/env bash
# The main job, from nothing: set up (scripts/bootstrap.sh), then run the live perception
# graph in one process (`ros2 run emotion_perception live`). With no camera it runs on the
# embedded demo clip, prints what it sees and writes emotion_live.mp4. Arguments are passed on
# (see `scripts/demo.sh --help`), e.g. --source 0, --frames 300, --no-smoothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
# shellcheck source=env.sh
source "$ROOT/scripts/env.sh"
exec "$ROOT/install/emotion_perception/lib/emotion_perception/live" "$@"
