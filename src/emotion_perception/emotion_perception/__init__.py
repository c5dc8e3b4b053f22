"""emotion_perception: a plugin-based ROS 2 facial emotion perception stack."""

__version__ = "0.1.0"
