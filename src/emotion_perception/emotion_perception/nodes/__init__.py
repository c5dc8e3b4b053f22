"""ROS 2 nodes: thin adapters that convert messages and call the core."""
