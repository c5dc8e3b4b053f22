"""The ROS-free core: detection, tracking, preprocessing, classification, smoothing.

Nothing under this package imports rclpy, so it is unit-tested in milliseconds and reused by
the training and evaluation tools (see ../shared/STYLE.md, point 1).
"""
