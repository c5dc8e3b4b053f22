"""Average several trained classifiers into one Keras model: ``emotion_ensemble``.

``emotion_ensemble --members run1/best.keras run2/best.keras --out ensemble.keras``

The ensemble is a plain functional model (input -> each member -> Average of the members'
probabilities), so it saves, loads in safe mode, runs in the ``keras`` classifier and exports to
TFLite exactly like a single model. Members must share the input shape and class count.
Class activation maps are defined per member: run ``emotion_cam`` on a member file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence


def build_ensemble(members: Sequence, name: str = "ensemble"):
    """Return a model whose output is the mean of the members' outputs."""
    import keras

    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
    shapes = {tuple(m.input_shape[1:]) for m in members}
    outs = {tuple(m.output_shape[1:]) for m in members}
    if len(shapes) != 1 or len(outs) != 1:
        raise ValueError(f"members disagree: input shapes {shapes}, output shapes {outs}")
    inputs = keras.Input(next(iter(shapes)), name="face")
    renamed = []
    for i, m in enumerate(members):
        m.name = f"member{i + 1}_{m.name}"
        renamed.append(m(inputs, training=False))
    outputs = keras.layers.Average(name="mean_probabilities")(renamed)
    return keras.Model(inputs, outputs, name=name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``emotion_ensemble``."""
    p = argparse.ArgumentParser(prog="emotion_ensemble", description=__doc__.split("\n\n")[0])
    p.add_argument("--members", nargs="+", type=Path, required=True, help=".keras members")
    p.add_argument("--out", type=Path, required=True, help="output .keras file")
    p.add_argument("--name", default="emotion_net_ensemble", help="model name")
    a = p.parse_args(argv)
    import keras

    missing = [str(m) for m in a.members if not m.is_file()]
    if missing:
        print(f"emotion_ensemble: missing member files: {', '.join(missing)}", file=sys.stderr)
        return 2
    members = [keras.saving.load_model(str(m), compile=False, safe_mode=True)
               for m in a.members]
    try:
        model = build_ensemble(members, a.name)
    except ValueError as exc:
        print(f"emotion_ensemble: {exc}", file=sys.stderr)
        return 2
    a.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(a.out)
    print(f"wrote {a.out} ({model.count_params():,} parameters, {len(members)} members)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
