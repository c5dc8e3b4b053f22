"""The lifecycle base shared by every emotion_perception node.

It declares the node's parameters with descriptors, validates them at start-up and on change,
loads models in ``configure`` (a failure leaves the node unconfigured with a clear error, so it
never runs wrong), creates I/O in ``activate``, and publishes diagnostics. With the parameter
``autostart`` (default true) the node walks itself to *active*, so plain ``ros2 run`` and
launch files without lifecycle management work too.

Parameters at runtime: a parameter declared ``read_only`` (core/params.py) is refused by rclpy
with its reason. Every other one is applied while the node runs, in three steps inside the
set-parameters callback, so a change is either in effect when ``ros2 param set`` answers
"successful" or refused with the reason (and the old objects are kept):

1. ``check_params`` validates the combination (e.g. ``reconnect_max_delay >=
   reconnect_initial_delay``, or a parameter of a plugin other than the running one);
2. ``prepare_params`` builds what the change needs (a new detector, a new smoother: loading a
   model here is how a bad value is found before it is accepted);
3. ``apply_params`` swaps the prepared objects in while the node's worker is between two
   inputs (the state lock), and must not fail.

Inputs are screened for their age: see :meth:`PerceptionNode.admit` (``max_age``,
``max_clock_offset``).
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.subscription import Subscription
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from ..core.image_conversion import ImageConversionError
from ..core.params import NODE_PARAMS, Param, by_name, validate
from .convert import check_image_msg
from .worker import (KeyedSlot, LatestWorker, RateLimitedLog, SingleSlot,  # noqa: F401
                     StageStats)

RESULT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                        history=HistoryPolicy.KEEP_LAST)
IMAGE_PUB_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE,
                           history=HistoryPolicy.KEEP_LAST)
#: state published once and on change (the detector's crop framing): a late subscriber gets it
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


def image_sub_qos(kind: str) -> QoSProfile:
    """Return the QoS for image subscriptions: sensor_data (best effort) or reliable."""
    if kind == "reliable":
        return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                          history=HistoryPolicy.KEEP_LAST)
    return qos_profile_sensor_data


def stamp_seconds(stamp: Any) -> float:
    """Return a builtin_interfaces/Time as float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def _descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(description=p.description, read_only=p.read_only)
    if p.choices:
        d.additional_constraints = "one of: " + ", ".join(p.choices)
    if isinstance(p.default, bool):
        return d
    if isinstance(p.default, int) and (p.min is not None or p.max is not None):
        d.integer_range = [IntegerRange(from_value=int(p.min if p.min is not None else -2**63),
                                        to_value=int(p.max if p.max is not None else 2**63 - 1),
                                        step=1)]
    elif isinstance(p.default, float) and (p.min is not None or p.max is not None):
        d.floating_point_range = [FloatingPointRange(
            from_value=float(p.min if p.min is not None else -1e308),
            to_value=float(p.max if p.max is not None else 1e308), step=0.0)]
    return d


class PerceptionNode(LifecycleNode):
    """Lifecycle node with declared, validated parameters, diagnostics and autostart."""

    #: key into params.NODE_PARAMS, and the default node name
    NODE_NAME = ""
    #: node-specific counters shown in diagnostics from the start (besides StageStats')
    EXTRA_COUNTERS: tuple[str, ...] = ()

    def __init__(self, node_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(node_name or self.NODE_NAME, **kwargs)
        self._specs = by_name(NODE_PARAMS[self.NODE_NAME])
        for p in self._specs.values():
            try:
                self.declare_parameter(p.name, p.default, _descriptor(p))
            except Exception as exc:
                raise ValueError(f"{self.get_name()}: parameter '{p.name}': {exc}") from exc
        # the checks of core.params.validate, as live and the bag evaluation apply them
        values = validate(self.NODE_NAME, self.param_values())  # ValueError naming it
        self.stats = StageStats()
        for key in self.EXTRA_COUNTERS:
            self.stats.count(key, 0)  # listed in diagnostics from the start
        if "max_age" in self._specs:
            self.stats.count("stale", 0)
            self.stats.count("foreign_stamps", 0)
        if "max_faces" in self._specs and self.NODE_NAME != "face_detector":
            self.stats.count("faces_dropped", 0)
        self.warn_limited = RateLimitedLog(self.get_logger().warning)
        self._diag_pub = None
        self._diag_timer = None
        self._io: list = []
        self._pub = None
        self._worker: LatestWorker | None = None
        self.params_changed = threading.Event()
        self.configure_error = ""
        #: set when the process should end with this code (runner.spin_until_exit reads it)
        self.exit_code: int | None = None
        #: the parameter values the node runs with (set by configure, changed by apply_params)
        self.values: dict[str, Any] = values
        #: held by the worker while it processes one input and by apply_params while it swaps
        self.state_lock = threading.RLock()
        self._configured = False
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if values["autostart"]:
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # --- parameters -------------------------------------------------------------------------
    def param_values(self) -> dict[str, Any]:
        """Return the current value of every declared parameter."""
        return {name: self.get_parameter(name).value for name in self._specs}

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        """Validate, prepare and apply a change at once, or refuse it with the reason.

        Read-only parameters never get here (rclpy refuses them first).
        """
        try:
            new = validate(self.NODE_NAME, {prm.name: prm.value for prm in params
                                            if prm.name in self._specs})
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        current = self.param_values()
        changed = {k for k, v in new.items() if current[k] != v}
        if not changed:
            return SetParametersResult(successful=True)
        values = {**current, **new}
        try:
            self.check_params(values, changed)
            prepared = self.prepare_params(values, changed) if self._configured else None
        except Exception as exc:  # refused: the running objects stay as they are
            reason = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            self.get_logger().warning(f"refused setting {', '.join(sorted(changed))}: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        with self.state_lock:
            if self._configured:
                self.values = values
                self.apply_params(values, changed, prepared)
        if "diagnostics_period" in changed and self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = self.create_timer(float(values["diagnostics_period"]),
                                                 self.publish_diagnostics)
        self.params_changed.set()
        return SetParametersResult(successful=True)

    def check_params(self, values: dict[str, Any], changed: set[str] | None) -> None:
        """Raise ValueError when ``values`` cannot work together.

        ``changed`` is the set of parameters being set at runtime, or None at configure (all
        values from the start-up configuration). Subclasses extend this.
        """

    def prepare_params(self, values: dict[str, Any], changed: set[str]) -> Any:
        """Build what a runtime change needs; raise to refuse it (the old objects stay)."""
        return None

    def apply_params(self, values: dict[str, Any], changed: set[str], prepared: Any) -> None:
        """Put a validated change into effect (``self.values`` is already ``values``).

        Called with ``state_lock`` held, so never in the middle of an input. The base applies
        ``diagnostics_period``; parameters read from ``self.values`` on each input
        (``max_image_pixels``, ``max_faces``, ``max_age`` ...) need nothing more.
        """

    # --- lifecycle --------------------------------------------------------------------------
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        self.trigger_configure()
        if self.configure_error:
            self.get_logger().error(f"not activating: {self.configure_error}")
            self.exit_code = 1  # under autostart nobody else will configure it: the runner exits
            return
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            self.exit_code = 1

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Validate parameters and load models; fail with a clear message."""
        try:
            self.configure_error = ""
            values = self.param_values()
            with self.state_lock:
                self.check_params(values, None)
                self.values = values
                self.setup(values)
                self._configured = True
        except Exception as exc:
            self.configure_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"configure failed: {self.configure_error}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Create publishers, subscriptions and workers."""
        try:
            self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
            period = float(self.get_parameter("diagnostics_period").value)
            self._diag_timer = self.create_timer(period, self.publish_diagnostics)
            self.open_io()
        except Exception as exc:
            self.get_logger().error(f"activate failed: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop workers and remove I/O."""
        self._close_all()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Release models."""
        self._configured = False
        self.teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Stop everything."""
        self._configured = False
        self._close_all()
        self.teardown()
        return TransitionCallbackReturn.SUCCESS

    def _close_all(self) -> None:
        self.close_io()
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
            self._diag_pub = None

    # --- hooks for subclasses ---------------------------------------------------------------
    def setup(self, values: dict[str, Any]) -> None:
        """Build the core objects (load models); raise with a clear message on failure."""

    def teardown(self) -> None:
        """Release the core objects."""

    def open_io(self) -> None:
        """Create publishers, subscriptions, timers, worker threads."""

    def close_io(self) -> None:
        """Destroy the I/O made with the add_* helpers, newest first.

        Subscriptions go before workers and workers before publishers when open_io creates
        them in the order publisher, worker, subscription.
        """
        self._worker = None
        while self._io:
            obj = self._io.pop()
            if isinstance(obj, LatestWorker):
                obj.stop()
            elif isinstance(obj, Publisher):
                self.destroy_publisher(obj)
            else:
                self.destroy_subscription(obj)
        self._pub = None

    def add_publisher(self, msg_type: Any, topic: str, qos: QoSProfile) -> Publisher:
        """Create a publisher that close_io destroys."""
        pub = self.create_publisher(msg_type, topic, qos)
        self._io.append(pub)
        return pub

    def add_subscription(self, msg_type: Any, topic: str, callback: Callable[[Any], None],
                         qos: QoSProfile) -> Any:
        """Create a subscription that close_io destroys.

        The callback is guarded: an exception is counted as an error and logged (rate
        limited), never raised into the executor, where it would stop every node it spins.
        """
        sub = self.create_subscription(msg_type, topic, self.guarded(callback), qos)
        self._io.append(sub)
        return sub

    def add_worker(self, fn: Callable[[Any], None],
                   slot: SingleSlot | KeyedSlot | None = None) -> LatestWorker:
        """Start a newest-item worker thread that close_io stops.

        ``fn`` runs with ``state_lock`` held, so a parameter change never lands mid-input.
        ``slot`` (default :class:`SingleSlot`) decides which waiting input a new one replaces.
        """
        def locked(item: Any) -> None:
            with self.state_lock:
                fn(item)

        worker = LatestWorker(locked, self.stats, self.NODE_NAME, slot)
        self._io.append(worker)
        return worker

    def guarded(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """Wrap an executor callback so that an exception is counted and logged, not raised."""
        @functools.wraps(callback)
        def run(msg: Any) -> None:
            try:
                callback(msg)
            except Exception as exc:  # the node (and the graph's executor) must survive
                text = f"{type(exc).__name__}: {exc}"
                self.stats.error(text)
                self.warn_limited(f"callback {callback.__name__}",
                                  f"{callback.__name__} failed: {text}")
        return run

    def reject(self, key: str, message: str, n: int = 1) -> None:
        """Count ``n`` rejected inputs and log ``message`` (rate limited per ``key``)."""
        self.stats.count("rejected", n)
        self.stats.last_error = message
        self.warn_limited(key, message)

    def screen_image(self, msg: Any) -> bool:
        """Count an incoming Image and check its fields; False (counted rejected) if malformed.

        Reads no pixel (see ``convert.check_image_msg``: fields, step, data length, the
        ``max_image_pixels`` limit), so image callbacks call it before the newest-wins slot and
        a malformed message never displaces a good one.
        """
        self.stats.count("received")
        try:
            check_image_msg(msg, self.values["max_image_pixels"])
        except ImageConversionError as exc:
            self.reject("image", f"rejected image: {exc}")
            return False
        return True

    def limit_faces(self, items: list) -> list:
        """Return the first ``max_faces`` items; the rest are counted as faces_dropped."""
        limit = int(self.values["max_faces"])
        if len(items) <= limit:
            return items
        extra = len(items) - limit
        self.stats.count("faces_dropped", extra)
        self.warn_limited("max_faces", f"message with {len(items)} faces: kept the first "
                          f"{limit} (parameter max_faces), dropped {extra}")
        return items[:limit]

    def stamp_age(self, stamp: Any) -> float | None:
        """Return the age (s) of a header stamp on this node's clock, None for a foreign stamp.

        A stamp further than ``max_clock_offset`` from the node clock (either way) is from
        another clock domain: a replayed bag's recorded time, another machine's unsynchronised
        clock, an unset (zero) stamp. Its "age" means nothing, so it is neither used for
        ``max_age`` nor recorded as latency.
        """
        age = self.get_clock().now().nanoseconds * 1e-9 - stamp_seconds(stamp)
        limit = self.values.get("max_clock_offset")
        if limit is not None and abs(age) > float(limit):
            return None
        return age

    def admit(self, stamp: Any) -> bool:
        """Return False for an input too old to process (counted as dropped and stale).

        Called when the input's turn comes (on the worker), so an input that waited through a
        stall (SIGSTOP, a long model load) is dropped instead of published late. Foreign stamps
        (see :meth:`stamp_age`) are counted as foreign_stamps and always admitted: bags
        replayed with their recorded stamps work unchanged (with ``use_sim_time`` and the
        bag's /clock the stamps are of the node clock again and ``max_age`` applies).
        """
        age = self.stamp_age(stamp)
        if age is None:
            self.stats.count("foreign_stamps")
            return True
        max_age = float(self.values.get("max_age", 0.0))
        if max_age > 0.0 and age > max_age:
            self.stats.count("dropped")
            self.stats.count("stale")
            self.warn_limited("stale", f"dropped an input {age:.2f} s old (parameter max_age "
                              f"{max_age:g} s)")
            return False
        return True

    def record(self, stamp: Any, started: float) -> None:
        """Count one processed input; its latency only when the stamp is of this clock."""
        self.stats.processed(self.stamp_age(stamp), time.monotonic() - started)

    def publish_output(self, msg: Any) -> bool:
        """Publish on the node's output, counting it as published; False when closed."""
        pub = self._pub
        if pub is None:
            return False
        pub.publish(msg)
        self.stats.count("published")
        return True

    def enqueue(self, msg: Any) -> None:
        """Count an input and hand it to the node's worker (newest wins)."""
        self.stats.count("received")
        worker = self._worker
        if worker is not None:
            worker.submit(msg)

    def diagnostics_extra(self) -> dict[str, Any]:
        """Return node-specific diagnostic values."""
        return {}

    def publish_diagnostics(self) -> None:
        """Publish the stage's counters, rate and latency on /diagnostics."""
        if self._diag_pub is None:
            return
        snap = self.stats.snapshot()
        subs = [obj for obj in self._io if isinstance(obj, Subscription)]
        if subs:  # with one publisher per input, its "published" minus our "received" is
            # what the transport lost (see the README, Reliability)
            snap["input_publishers"] = sum(sub.get_publisher_count() for sub in subs)
        snap.update(self.diagnostics_extra())
        status = DiagnosticStatus(name=f"emotion_perception: {self.get_fully_qualified_name()}",
                                  hardware_id=self.get_name())
        if snap.get("errors", 0) or snap.get("rejected", 0):
            status.level = DiagnosticStatus.WARN
            status.message = self.stats.last_error or "rejected input"
        else:
            status.level = DiagnosticStatus.OK
            status.message = "ok"
        status.values = [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v))
                         for k, v in sorted(snap.items())]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)
