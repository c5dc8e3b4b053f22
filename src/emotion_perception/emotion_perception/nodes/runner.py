"""Spinning helpers: one node per process (``ros2 run``) or several in one (the live runner)."""

from __future__ import annotations

import signal
import sys
from typing import Iterable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor


def run_single(node_cls, args: list[str] | None = None) -> None:
    """Initialise rclpy, run one node until Ctrl-C, shut down without a traceback."""
    rclpy.init(args=args if args is not None else sys.argv)
    try:
        node = node_cls()
    except ValueError as exc:  # parameter errors name the parameter
        print(f"[{node_cls.NODE_NAME}] error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    spin_nodes([node])


def spin_nodes(nodes: Iterable, executor=None) -> None:
    """Spin ``nodes`` on a multi-threaded executor until Ctrl-C or shutdown, then clean up."""
    nodes = list(nodes)
    executor = executor or MultiThreadedExecutor(num_threads=4)
    for n in nodes:
        executor.add_node(n)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutdown_nodes(nodes, executor)


def shutdown_nodes(nodes: Iterable, executor=None, spin_thread=None) -> None:
    """Stop the executor (and its spin thread), then the nodes' workers; destroy the nodes.

    Idempotent; shuts rclpy down at the end. Entities are never destroyed while an executor
    is still waiting on them.
    """
    if executor is not None:
        executor.shutdown(timeout_sec=2.0)
    if spin_thread is not None:
        spin_thread.join(timeout=5.0)
    for n in nodes:
        try:
            n._close_all() if hasattr(n, "_close_all") else None
            if hasattr(n, "teardown"):
                n.teardown()
            n.destroy_node()
        except Exception:  # shutting down: nothing left to report to
            pass
    rclpy.try_shutdown()
