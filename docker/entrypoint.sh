#!/usr/bin/env bash
# Source ROS 2 and the workspace, then launch the live graph with the given arguments.
set -e
source /opt/ros/jazzy/setup.bash
source /ws/scripts/env.sh
exec ros2 launch emotion_perception live.launch.py "$@"
