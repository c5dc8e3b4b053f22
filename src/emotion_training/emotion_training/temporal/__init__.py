"""Temporal smoothing: synthetic face sequences, LSTM training and the smoother benchmark.

``python -m emotion_training.temporal {make,train,bench,all} --out WORK [...]``

make
    Builds synthetic "video" sequences from still FER2013 faces and runs a trained classifier
    on every frame. A sequence shows one face of class ``a``; with probability
    ``switch_prob`` it switches at a random frame (at least ``min_segment`` frames from either
    end) to a face of another class ``b``. Every frame is the current face with its own
    perturbation: the Keras augmenter of :mod:`emotion_training.augment` (rotation, zoom,
    shift, brightness, contrast; no flip, a mirrored face is chosen per sequence instead) and
    OpenCV ops (Gaussian blur, sensor noise, occluding rectangles that persist for a few
    frames like a hand passing by), quantised back to 8 bits as a camera would deliver, then
    preprocessed with the shared :func:`preprocess_faces` and classified. Stamps follow
    ``fps`` with jitter and the odd dropped frame. The target of each frame is the true
    label of the face shown. Training sequences use only the cleaned Training split (minus
    every image also in PublicTest), benchmark sequences only PublicTest: the two never mix.
    Writes ``WORK/sequences/{train,test}.npz`` (+ a PNG of example frames).
train
    Trains the many-to-one LSTM of :func:`build_lstm` on every frame's window of the last
    ``window`` probability vectors (left zero-padded at a sequence start, exactly as
    :class:`~emotion_perception.core.smoothing.lstm.LstmSmoother` builds them at run time via
    the shared :func:`sliding_windows`), target = the frame's true label. A held-out part of
    the training *sequences* (never of their windows) drives early stopping. Writes
    ``WORK/lstm/emotion_lstm.keras``, ``history.csv`` and ``train_summary.json``.
bench
    Runs ``none``, ``ema``, ``hysteresis`` and ``lstm`` through the runtime smoother classes
    (all sequences as concurrent tracks, one ``update_many`` per frame) on the benchmark
    sequences and reports accuracy, flicker (unnecessary label changes per second on segments
    of constant truth), transition lag and per-update time; see
    :mod:`emotion_perception.core.metrics` for the definitions. Writes ``WORK/bench/``
    (``bench.json``, ``bench.txt``, ``bench.png``); ``--export DIR`` also writes
    ``DIR/emotion_lstm.keras``, its model card (``emotion_lstm.model_card.{md,json}``) and
    ``DIR/emotion_lstm.tflite``, what the runtime runs (:mod:`emotion_training.lstm_export`).
all
    make, train and bench in one go.

Everything is seeded (``seed`` in the config; the benchmark sequences use ``seed + 1``), so
the same inputs give the same sequences, model and numbers on the same machine.

Layout: :mod:`.config` (the validated settings), :mod:`.synth` (sequence synthesis and the
classifier/data loaders), :mod:`.training` (the LSTM and its training), :mod:`.benchmark`
(the smoother comparison, its table and plot), :mod:`.card` (the exported model card) and
:mod:`.cli` (the command line). The names below are re-exported so that
``from emotion_training import temporal as T; T.make_sequences(...)`` keeps working.
"""

from ..export import sha256_of
from .benchmark import (BENCH_COLUMNS, bench, lstm_window, make_smoothers, markdown_table,
                        plot_bench, run_smoother)
from .card import write_model_card
from .cli import build_parser, cmd_bench, cmd_make, cmd_train, main
from .config import (CARD_STEM, LSTM_FILE, METHODS, BenchConfig, LstmConfig, SequenceConfig,
                     TemporalConfig)
from .synth import (Classifier, FramePerturber, SequenceSet, file_classifier, load_splits,
                    make_sequences, make_stamps, plot_frames)
from .training import build_lstm, split_sequences, train_lstm, training_windows

__all__ = [
    "BENCH_COLUMNS", "CARD_STEM", "LSTM_FILE", "METHODS", "BenchConfig", "Classifier",
    "FramePerturber", "LstmConfig", "SequenceConfig", "SequenceSet", "TemporalConfig", "bench",
    "build_lstm", "build_parser", "cmd_bench", "cmd_make", "cmd_train", "file_classifier",
    "load_splits", "lstm_window", "main", "make_sequences", "make_smoothers", "make_stamps",
    "markdown_table", "plot_bench", "plot_frames", "run_smoother", "sha256_of",
    "split_sequences", "train_lstm", "training_windows", "write_model_card",
]
