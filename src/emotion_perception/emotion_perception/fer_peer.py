"""The peer side of ``bench --peer``: the `fer` package's ``FER.detect_emotions`` on given frames.

``bench_peer.py`` runs this file in the interpreter where `fer` is installed (its own virtual
environment: `fer` brings its own TensorFlow and OpenCV, which must not replace the project's
pinned ones), as ``PEER_PYTHON fer_peer.py FRAMES.npy [FER_KWARGS_JSON]``. The protocol, one
JSON object per line on stdout:

- once loaded: ``{"ready": true, "peer": ..., "settings": {...}}``, or ``{"skipped": reason}``
  (then it exits 0) when `fer` cannot be imported or built;
- for every ``run`` line on stdin: ``FER.detect_emotions`` once on every frame, each call timed
  here, in this process: ``{"seconds": [...], "faces": [...]}``;
- ``quit`` or the end of stdin ends it; an error while running is ``{"error": message}``.

Whatever TensorFlow or OpenCV print goes to stderr: stdout's file descriptor is kept for the
protocol and fd 1 is pointed at stderr before anything is imported. Only the standard library,
NumPy and `fer` are imported, not this project, and `fer` by name at run time (importlib): it
is the benchmark's peer, deliberately no dependency of this package.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import time

import numpy as np

WARMUP_CALLS = 3


def load_peer(kwargs: dict) -> tuple[object | None, dict]:
    """Return (the FER object, its description), or (None, {"skipped": reason})."""
    try:
        fer = importlib.import_module("fer")
        cls = getattr(fer, "FER", None)
        if cls is None:  # fer 25.x no longer exports FER from the package itself
            cls = importlib.import_module("fer.fer").FER
    except Exception as exc:  # ImportError, or a broken TensorFlow/OpenCV under it
        return None, {"skipped": f"the fer package is not importable by {sys.executable}: "
                                 f"{type(exc).__name__}: {exc}"}
    settings = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    settings.update(kwargs)
    try:
        peer = cls(**kwargs)
    except Exception as exc:
        return None, {"skipped": f"fer.FER({kwargs}) failed: {type(exc).__name__}: {exc}"}
    versions = {"fer": getattr(fer, "__version__", "?")}
    for module in ("cv2", "tensorflow"):
        if module in sys.modules:
            versions[module] = getattr(sys.modules[module], "__version__", "?")
    return peer, {"ready": True, "peer": f"fer {versions['fer']}", "versions": versions,
                  "settings": {k: v if isinstance(v, (bool, int, float, str, type(None)))
                               else str(v) for k, v in settings.items()},
                  "python": sys.version.split()[0]}


def run_once(peer, frames) -> dict:
    """Run ``peer.detect_emotions`` on every frame; return per-call seconds and faces found."""
    seconds, faces = [], []
    for frame in frames:
        t0 = time.perf_counter()
        found = peer.detect_emotions(frame)
        seconds.append(time.perf_counter() - t0)
        faces.append(len(found))
    return {"seconds": seconds, "faces": faces}


def main(argv: list[str]) -> int:
    """Serve the protocol in the module docstring; return the exit status."""
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # TensorFlow/OpenCV chatter on fd 1 now lands on stderr
    sys.stdout = sys.stderr

    def emit(obj: dict) -> None:
        protocol.write(json.dumps(obj) + "\n")
        protocol.flush()

    if len(argv) not in (1, 2):
        emit({"error": "usage: fer_peer.py FRAMES.npy [FER_KWARGS_JSON]"})
        return 2
    kwargs = json.loads(argv[1]) if len(argv) == 2 else {}
    frames = np.load(argv[0])  # all in memory: no page faults inside the timed calls
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        emit({"error": f"{argv[0]}: expected (N, H, W, 3) uint8 BGR frames, got "
                       f"{frames.dtype} {frames.shape}"})
        return 2
    peer, info = load_peer(kwargs)
    if peer is None:
        emit(info)
        return 0
    try:
        for frame in frames[:WARMUP_CALLS]:
            peer.detect_emotions(frame)
        emit(info)
        for line in sys.stdin:
            command = line.strip()
            if command == "quit":
                break
            if command == "run":
                emit(run_once(peer, frames))
            else:
                emit({"error": f"unknown command {command!r} (run | quit)"})
    except Exception as exc:
        emit({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
