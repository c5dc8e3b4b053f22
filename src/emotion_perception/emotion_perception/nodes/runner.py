"""Spinning helpers: one node per process (``ros2 run``) or several in one (``live``, bags).

Every caller spins each node on a single-threaded executor of its own (:func:`make_executor`
without ``num_threads``): each node's heavy work runs on its own worker thread, and rclpy's
multi-threaded executor, which :func:`make_executor` still returns when asked for threads,
starved those workers in the graph. :func:`run_single` serves ``ros2 run`` and the launch
files (one node per process), :class:`BackgroundSpin` the in-process graphs (``live``, bag
replay, ``probe``, ``soak``, ``fuzz``, the benchmarks: one executor thread per node).
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Iterable

import rclpy
import rclpy.logging
from rclpy.executors import (ExternalShutdownException, MultiThreadedExecutor,
                             SingleThreadedExecutor)
from rclpy.signals import SignalHandlerOptions


class ShutdownSignals:
    """SIGINT and SIGTERM become one shutdown request; repeats are ignored quietly.

    A Ctrl-C in the terminal of ``ros2 launch`` reaches every node twice: from the terminal
    (the whole foreground process group gets it) and again when launch forwards it to each
    child. With rclpy's own handler each signal raises KeyboardInterrupt, and the second one
    lands in the middle of the clean-up (``destroy_node``): a traceback and exit code -2. So the
    node processes install these handlers instead (rclpy's are off: ``SignalHandlerOptions.NO``)
    and keep them until the process exits: the first signal asks the spin loop to stop, every
    later SIGINT or SIGTERM (launch escalates to SIGTERM after its timeout) changes nothing.
    When the process is about to exit, ``ignore`` sets both to SIG_IGN: Python resets its own
    handlers to the default action while the interpreter finalizes, and a signal then would
    still kill the process with -2 (seen: a node takes ~0.3 s to tear DDS down). A signal that
    arrived just before that switch makes CPython print "Signal N ignored due to race
    condition" as an unraisable error; the signal was meant to be ignored, so that one report
    is dropped (``_quiet_signal_race``).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum = 0
        self.count = 0

    def install(self) -> "ShutdownSignals":
        """Install the handlers (only the main thread can); return self."""
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame) -> None:
        self.count += 1
        if not self.event.is_set():
            self.signum = signum
            self.event.set()

    def ignore(self) -> None:
        """Ignore SIGINT and SIGTERM from now on (the process is on its way out)."""
        if threading.current_thread() is threading.main_thread():
            sys.unraisablehook = _quiet_signal_race(sys.unraisablehook)
            for sig in self.SIGNALS:
                signal.signal(sig, signal.SIG_IGN)

    def requested(self) -> bool:
        """Return True once a signal asked for shutdown."""
        return self.event.is_set()


def _quiet_signal_race(previous):
    """Return an unraisable hook that drops CPython's report of an ignored signal's race."""
    def hook(info) -> None:
        if isinstance(info.exc_value, OSError) and "ignored due to race condition" in str(
                info.exc_value):
            return
        previous(info)
    return hook


def run_single(node_cls, args: list[str] | None = None) -> None:
    """Run one node in this process until a signal, or until the node asks to exit.

    The process exits 0 after SIGINT/SIGTERM (however many arrive) and after the node's
    lifecycle reached *finalized* (the ``shutdown`` transition: a finalized node can do
    nothing more, so its process must not linger), 2 on a bad parameter, and with the node's
    ``exit_code`` when it sets one (1 when it failed to configure or activate under
    ``autostart``: nobody else will start it, and ``ros2 launch`` must see the failure).
    """
    signals = ShutdownSignals().install()  # before init: no window for a KeyboardInterrupt
    rclpy.init(args=args if args is not None else sys.argv,
               signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = node_cls()
    except ValueError as exc:  # parameter errors name the parameter
        print(f"[{node_cls.NODE_NAME}] error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    code = spin_until_exit([node], signals)
    signals.ignore()  # exiting: a late signal must not turn a clean exit into -2
    sys.exit(code)


def lifecycle_state(node) -> str:
    """Return the label of a lifecycle node's current state ("" for other nodes)."""
    machine = getattr(node, "_state_machine", None)
    try:
        return str(machine.current_state[1]) if machine is not None else ""
    except Exception:  # destroyed or not a lifecycle node
        return ""


def exit_request(nodes: Iterable) -> int | None:
    """Return the exit code a node asks for (its ``exit_code``, 0 once finalized), or None."""
    for n in nodes:
        code = getattr(n, "exit_code", None)
        if code is not None:
            return int(code)
        if lifecycle_state(n) == "finalized":
            return 0
    return None


def spin_until_exit(nodes: Iterable, signals: ShutdownSignals | None = None, executor=None,
                    poll: float = 0.1) -> int:
    """Spin ``nodes`` until a signal, an exit request of a node, or rclpy shutdown; clean up.

    Returns the exit code: 0 on a signal or a finalized node, else the node's ``exit_code``.
    The loop spins with a timeout of ``poll`` seconds, so a request is seen within it.
    """
    nodes = list(nodes)
    executor = executor or make_executor()
    for n in nodes:
        executor.add_node(n)
    code: int | None = None
    try:
        while code is None:
            if signals is not None and signals.requested():
                code = 0
                break
            if not rclpy.ok():
                code = 0
                break
            executor.spin_once(timeout_sec=poll)
            code = exit_request(nodes)
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 0
    finally:
        shutdown_nodes(nodes, executor)
    return code


def spin_nodes(nodes: Iterable, executor=None) -> None:
    """Spin ``nodes`` until SIGINT/SIGTERM or shutdown (repeated signals ignored); clean up."""
    signals = ShutdownSignals().install()
    spin_until_exit(nodes, signals, executor)


def shutdown_nodes(nodes: Iterable, executor=None, spin_thread=None,
                   shutdown_rclpy: bool = True) -> None:
    """Stop the executor (and its spin thread), then the nodes' workers; destroy the nodes.

    Idempotent. Entities are never destroyed while an executor is still waiting on them.
    An error while closing one node does not stop the others: it is logged as a warning
    (node, step, exception) and that node's remaining steps are skipped, as a node whose
    workers did not close must not have its entities destroyed under them. Calling this
    again on closed nodes raises nothing, so a warning here is always a real fault.
    """
    if executor is not None:
        executor.shutdown(timeout_sec=2.0)
    if spin_thread is not None:
        spin_thread.join(timeout=5.0)
    for n in nodes:
        step = ""
        try:
            step = "_close_all"
            n._close_all() if hasattr(n, "_close_all") else None
            step = "teardown"
            if hasattr(n, "teardown"):
                n.teardown()
            step = "destroy_node"
            n.destroy_node()
        except Exception as exc:  # shutting down: report it, go on with the next node
            rclpy.logging.get_logger("emotion_perception.shutdown").warning(
                f"closing node {_node_label(n)}: {step}() raised "
                f"{type(exc).__name__}: {exc}; its remaining shutdown steps were skipped")
    if shutdown_rclpy:
        rclpy.try_shutdown()


def _node_label(node) -> str:
    """Return a node's name for a log line, even for a half-destroyed node."""
    try:
        return node.get_name()
    except Exception:  # the handle is gone: the Python object is all there is
        return repr(node)


def make_executor(num_threads: int = 0):
    """Return the executor for our nodes: single-threaded unless ``num_threads`` > 0.

    Every heavy step (detection, inference) runs on the nodes' own worker threads and every
    executor callback is short, so one executor thread per node suffices. rclpy's multi-threaded
    executor busy-polls while a ready message waits for its callback group and, under load,
    starves those workers of the GIL (measured: detector 5 ms alone, 125 ms in the graph).
    """
    if num_threads > 0:
        return MultiThreadedExecutor(num_threads=num_threads)
    return SingleThreadedExecutor()


class BackgroundSpin:
    """Spin nodes in the background: each node on its own executor (see make_executor) thread.

    One executor per node, not one for all: rclpy rebuilds the executor's wait set in Python
    for every wake-up, at a cost that grows with the entities it holds (each lifecycle node
    brings 12 services, QoS event handlers, a timer), and one wake-up per message. With the
    whole graph on one executor every message paid for every node's entities (measured: 1 ms
    per rebuild, about 200 rebuilds/s, a quarter of a core for 1 face at 30 fps); with one per
    node each message pays for its own node only (README, Performance). Each node's callbacks
    still run one at a time, on its thread; nodes share no callback state.

    A context shut down by SIGINT/SIGTERM ends the spins quietly; ``stop`` shuts the
    executors down, joins the threads, then destroys the nodes. Jazzy's ``Executor.shutdown``
    destroys its guard condition without waiting for a running callback, so a spin thread can
    trip over the destroyed handle on its way out: errors after ``stop`` began are expected
    and ignored.
    """

    def __init__(self, nodes: Iterable, num_threads: int = 0, name: str = "spin") -> None:
        self.nodes: list = []
        self._stopping = False
        self._num_threads = num_threads
        self._name = name
        self.executors: list = []
        self.threads: list[threading.Thread] = []
        for n in nodes:
            self.add(n)

    def add(self, node) -> None:
        """Spin one more node, on an executor and thread of its own."""
        executor = make_executor(self._num_threads)
        executor.add_node(node)
        thread = threading.Thread(target=self._spin, args=(executor,), daemon=True,
                                  name=f"{self._name}:{node.get_name()}")
        self.nodes.append(node)
        self.executors.append(executor)
        self.threads.append(thread)
        thread.start()

    def _spin(self, executor) -> None:
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
        except Exception:
            if rclpy.ok() and not self._stopping:
                raise

    def alive(self) -> bool:
        """Return True while every executor thread runs (an escaped error ends one)."""
        return all(t.is_alive() for t in self.threads)

    def stop(self, shutdown_rclpy: bool = False) -> None:
        """Stop spinning and destroy the nodes (and shut rclpy down if asked)."""
        self._stopping = True
        for executor in self.executors:
            executor.shutdown(timeout_sec=2.0)
        for thread in self.threads:
            thread.join(timeout=5.0)
        shutdown_nodes(self.nodes, None, None, shutdown_rclpy)
