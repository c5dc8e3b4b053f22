"""Rosbag2 tools: make labelled bags, read them, replay them, score perception against them.

Bags are standard rosbag2 directories (``metadata.yaml`` plus an ``.mcap`` or ``.db3`` file)
written and read with the pure-Python ``rosbags`` library, so they interoperate with
``ros2 bag play/record/info``. Only :mod:`.player`, :mod:`.recorder` and the commands of
:mod:`.replay` import rclpy; everything else runs without ROS. See ``README.md`` in this
directory for the label topic and the command-line tools.
"""
