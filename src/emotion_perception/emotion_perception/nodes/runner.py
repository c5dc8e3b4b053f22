"""Spinning helpers: one node per process (``ros2 run``) or several in one (the live runner)."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Iterable

import rclpy
from rclpy.executors import (ExternalShutdownException, MultiThreadedExecutor,
                             SingleThreadedExecutor)


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
    executor = executor or make_executor()
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


def shutdown_nodes(nodes: Iterable, executor=None, spin_thread=None,
                   shutdown_rclpy: bool = True) -> None:
    """Stop the executor (and its spin thread), then the nodes' workers; destroy the nodes.

    Idempotent. Entities are never destroyed while an executor is still waiting on them.
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
    if shutdown_rclpy:
        rclpy.try_shutdown()


def make_executor(num_threads: int = 0):
    """Return the executor for our nodes: single-threaded unless ``num_threads`` > 0.

    Every heavy step (detection, inference) runs on the nodes' own worker threads and every
    executor callback is short, so one executor thread suffices. rclpy's multi-threaded
    executor busy-polls while a ready message waits for its callback group and, under load,
    starves those workers of the GIL (measured: detector 5 ms alone, 125 ms in the graph).
    """
    if num_threads > 0:
        return MultiThreadedExecutor(num_threads=num_threads)
    return SingleThreadedExecutor()


class BackgroundSpin:
    """Spin nodes on an executor (see make_executor) in a daemon thread.

    A context shut down by SIGINT/SIGTERM ends the spin quietly; ``stop`` shuts the executor
    down, joins the thread, then destroys the nodes. Jazzy's ``Executor.shutdown`` destroys
    its guard condition without waiting for a running callback, so the spin thread can trip
    over the destroyed handle on its way out: errors after ``stop`` began are expected and
    ignored.
    """

    def __init__(self, nodes: Iterable, num_threads: int = 0, name: str = "spin") -> None:
        self.nodes = list(nodes)
        self._stopping = False
        self.executor = make_executor(num_threads)
        for n in self.nodes:
            self.executor.add_node(n)
        self.thread = threading.Thread(target=self._spin, name=name, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass
        except Exception:
            if rclpy.ok() and not self._stopping:
                raise

    def alive(self) -> bool:
        """Return True while the executor thread runs."""
        return self.thread.is_alive()

    def stop(self, shutdown_rclpy: bool = False) -> None:
        """Stop spinning and destroy the nodes (and shut rclpy down if asked)."""
        self._stopping = True
        shutdown_nodes(self.nodes, self.executor, self.thread, shutdown_rclpy)
