"""``emotion_make_bag``: turn a video, an image folder or the FER npz into a labelled bag.

Examples::

    emotion_make_bag --out fer_test --npz fer2013_trainval.npz --limit 500 --repeat 5
    emotion_make_bag --out fer_scenes --npz fer2013_trainval.npz --scenes   # harder frames
    emotion_make_bag --out clip --video clip.mp4 --labels clip_labels.csv
    emotion_make_bag --out faces --folder faces/            # faces/<class>/*.png

The bag (rosbag2: mcap with zstd-compressed chunks by default, or sqlite3) holds
``sensor_msgs/Image`` bgr8 frames on ``--topic`` (default ``/camera/image_raw``) stamped
``1 / fps`` apart from ``--start-time``, and the ground truth on ``/ground_truth/emotion``
(``emotion_msgs/EmotionArray``, one message per labelled frame, same header as the image; see
README.md). Record time = header stamp.

Ground truth comes from:

* ``--npz``: the FER2013 labels. FER faces are tight 48x48 crops; a face detector needs context
  around a face, so each face is upscaled (cubic) to ``--face-size`` pixels (default 200) and
  pasted in the middle of a ``--canvas`` frame (default 640x480) of plain background. The
  label's ``roi`` is that pasted square. ``--repeat K`` shows each face for K frames, which
  gives constant-label segments for the flicker and lag metrics. ``--scenes`` makes harder
  frames instead (:mod:`.scenes`): faces of ``--min-face``..``--max-face`` px turned up to
  ``--max-rotation`` degrees at random places on textured backgrounds, brightness and
  contrast changed, ``--two-face-share`` of the frames with two faces (both labelled; roi =
  each face's unrotated square), drawn from ``--seed``.
* ``--labels CSV`` for ``--video`` / ``--folder``: either ``frame_index,label`` rows (one frame
  each) or ``start_s,end_s,label`` rows (every frame with ``start_s <= t < end_s``, ``t`` =
  index / fps). A header line is optional; labels are class names or indices 0-6. Frames that
  no row covers stay unlabelled.
* folder names: ``--folder DIR`` whose sub-folders are class names (``DIR/happy/*.png``); the
  frames go class by class, files in name order.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from ..core.classes import CLASS_NAMES, NUM_CLASSES, class_index
from ..core.sample_input import BACKGROUND_BGR
from ..core.types import Box
from .io import BagWriter, LabelFace
from .typestore import (DEFAULT_IMAGE_TOPIC, EMOTION_ARRAY_TYPE, IMAGE_TYPE, LABEL_TOPIC,
                        make_image, make_label)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}
DEFAULT_CANVAS = (640, 480)
DEFAULT_FACE_SIZE = 200


def parse_label(text: str) -> int:
    """Return the class index of a name (any case) or of an index 0-6 given as text."""
    text = str(text).strip()
    if text.isdigit():
        value = int(text)
        if not 0 <= value < NUM_CLASSES:
            raise ValueError(f"label index {value} is outside 0-{NUM_CLASSES - 1}")
        return value
    return class_index(text)


def parse_canvas(text: str) -> tuple[int, int] | None:
    """Return (width, height) of 'WxH', or None for 'none'."""
    text = text.strip().lower()
    if text in ("none", "off", "0"):
        return None
    try:
        w, h = (int(v) for v in text.split("x"))
    except ValueError:
        raise ValueError(f"canvas must be WIDTHxHEIGHT (e.g. 640x480) or none, got "
                         f"{text!r}") from None
    if w < 64 or h < 64:
        raise ValueError(f"canvas must be at least 64x64, got {w}x{h}")
    return w, h


@dataclass
class CsvLabels:
    """Ground truth from a CSV file: per frame index, or per time range (seconds)."""

    frames: dict[int, int] = field(default_factory=dict)
    ranges: list[tuple[float, float, int]] = field(default_factory=list)

    def label_at(self, index: int, t: float) -> int | None:
        """Return the label of frame ``index`` at time ``t`` (seconds from the start)."""
        if index in self.frames:
            return self.frames[index]
        for start, end, label in self.ranges:
            if start <= t < end:
                return label
        return None


def read_label_csv(path: str | Path) -> CsvLabels:
    """Parse a label CSV (see the module docstring); raise ValueError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"label file not found: {path}")
    out = CsvLabels()
    with path.open(newline="") as fh:
        rows = [(n, [c.strip() for c in row]) for n, row in enumerate(csv.reader(fh), 1)
                if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#")]
    if rows and not _is_number(rows[0][1][0]):
        rows = rows[1:]  # header line
    for line, row in rows:
        try:
            if len(row) == 2:
                index = int(row[0])
                if index < 0:
                    raise ValueError(f"frame index {index} is negative")
                if index in out.frames:
                    raise ValueError(f"frame {index} is labelled twice")
                out.frames[index] = parse_label(row[1])
            elif len(row) == 3:
                start, end = float(row[0]), float(row[1])
                if not end > start >= 0:
                    raise ValueError(f"need 0 <= start_s < end_s, got {start}, {end}")
                out.ranges.append((start, end, parse_label(row[2])))
            else:
                raise ValueError(f"expected 2 columns (frame_index,label) or 3 "
                                 f"(start_s,end_s,label), got {len(row)}")
        except ValueError as exc:
            raise ValueError(f"{path}:{line}: {exc}") from None
    if out.frames and out.ranges:
        raise ValueError(f"{path}: mixes frame rows and time-range rows; use one kind")
    spans = sorted(out.ranges)
    for (s0, e0, _), (s1, _, _) in zip(spans, spans[1:]):
        if s1 < e0:
            raise ValueError(f"{path}: time ranges overlap ({s0}-{e0} and {s1}-...)")
    if not out.frames and not out.ranges:
        raise ValueError(f"{path}: no label rows")
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def paste_on_canvas(image: np.ndarray, canvas: tuple[int, int], face_size: int,
                    background: Sequence[int] = BACKGROUND_BGR) -> tuple[np.ndarray, Box]:
    """Scale ``image`` so its longer side is ``face_size`` and paste it centred on a canvas.

    Returns (bgr8 frame of canvas (width, height), the pasted box).
    """
    width, height = canvas
    if face_size < 8 or face_size > min(width, height):
        raise ValueError(f"face_size must be in [8, {min(width, height)}] for a {width}x{height}"
                         f" canvas, got {face_size}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    h, w = image.shape[:2]
    scale = face_size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    face = cv2.resize(image, (new_w, new_h), interpolation=interp)
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = background
    x, y = (width - new_w) // 2, (height - new_h) // 2
    frame[y:y + new_h, x:x + new_w] = face
    return frame, Box(x, y, new_w, new_h)


# -- sources: each yields (bgr8 frame, labelled faces or None) --------------------------------
Item = tuple[np.ndarray, "list[LabelFace] | None"]


def npz_items(path: str | Path, split: str | None, limit: int, canvas: tuple[int, int] | None,
              face_size: int, repeat: int) -> tuple[int, Iterator[Item]]:
    """Return (frame count, frames) of FER faces from the npz (images, labels, usage arrays)."""
    from .detector_eval import load_faces

    images, labels = load_faces(Path(path), split or "", limit)
    if canvas is None:
        raise ValueError("--npz needs a canvas: FER faces are 48x48 crops a detector cannot "
                         "find without context")

    def gen() -> Iterator[Item]:
        for image, label in zip(images, labels):
            frame, box = paste_on_canvas(np.asarray(image, np.uint8), canvas, face_size)
            for _ in range(repeat):
                yield frame, [LabelFace(int(label), box)]

    return len(images) * repeat, gen()


def folder_items(path: str | Path, canvas: tuple[int, int] | None, face_size: int
                 ) -> tuple[int, Iterator[Item], bool]:
    """Return (count, frames, labelled) of an image folder (class sub-folders give labels)."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"image folder not found: {path}")
    subdirs = sorted(p for p in path.iterdir() if p.is_dir())
    entries: list[tuple[Path, int | None]] = []
    if subdirs:
        unknown = [p.name for p in subdirs if p.name.lower() not in CLASS_NAMES]
        if unknown:
            raise ValueError(f"{path}: sub-folders must be class names ({', '.join(CLASS_NAMES)}"
                             f"); unknown: {', '.join(unknown)}")
        for sub in sorted(subdirs, key=lambda p: class_index(p.name)):
            label = class_index(sub.name)
            entries += [(f, label) for f in sorted(sub.iterdir())
                        if f.suffix.lower() in IMAGE_SUFFIXES]
    else:
        entries = [(f, None) for f in sorted(path.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not entries:
        raise ValueError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")

    def gen() -> Iterator[Item]:
        for file, label in entries:
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"cannot read image {file}")
            box = None
            if canvas is not None:
                image, box = paste_on_canvas(image, canvas, face_size)
            yield image, (None if label is None else [LabelFace(label, box)])

    return len(entries), gen(), bool(subdirs)


def video_items(path: str | Path) -> tuple[int, Iterator[Item], float]:
    """Return (frame count estimate, frames, the file's fps or 0) of a video file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"video file not found: {path}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def gen() -> Iterator[Item]:
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                yield frame, None
        finally:
            cap.release()

    return count, gen(), fps


def scene_items(path: str | Path, split: str | None, limit: int, canvas: tuple[int, int] | None,
                repeat: int, seed: int = 0, sizes: tuple[float, float] = (80, 320),
                max_rotation: float = 25.0, two_face_share: float = 0.3
                ) -> tuple[int, Iterator[Item]]:
    """Return (frame count, frames) of FER faces in :func:`.scenes.make_scenes` frames."""
    from .detector_eval import load_faces
    from .scenes import make_scenes

    if canvas is None:
        raise ValueError("--scenes needs a canvas")
    path = Path(path)
    images, labels = load_faces(path, split or "", limit)
    scenes = make_scenes(images, labels, seed=seed, canvas=canvas, sizes=sizes,
                         max_rotation=max_rotation, two_face_share=two_face_share)

    def gen() -> Iterator[Item]:
        for scene in scenes:
            faces = [LabelFace(f.label, f.box) for f in scene.faces]
            for _ in range(repeat):
                yield scene.frame, faces

    # about (1 + two_face_share) faces per frame; the progress bar only needs an estimate
    return int(round(len(images) * repeat / (1.0 + two_face_share))), gen()


# -- writing ------------------------------------------------------------------------------------
def write_bag(out: str | Path, items: Iterator[Item], fps: float, *, total: int | None = None,
              storage: str = "mcap", topic: str = DEFAULT_IMAGE_TOPIC, frame_id: str = "camera",
              label_topic: str = LABEL_TOPIC, start_ns: int | None = None,
              csv_labels: CsvLabels | None = None, overwrite: bool = False,
              custom_data: dict[str, str] | None = None, progress: bool = True,
              compress: bool | None = None) -> dict[str, int]:
    """Write frames (bgr8) and their labels to a new bag; return message counts per topic.

    Frame ``i`` is stamped ``start_ns + i / fps`` (record time = stamp). ``csv_labels``
    labels frames by index/time (overriding labels from ``items``). ``compress`` (default:
    with mcap) stores zstd-compressed mcap chunks.
    """
    from tqdm import tqdm

    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if start_ns is None:
        start_ns = int(time.time()) * 1_000_000_000
    data = {"emotion_perception.label_topic": label_topic,
            "emotion_perception.image_topic": topic, "emotion_perception.fps": f"{fps:g}"}
    data.update(custom_data or {})
    labelled = 0
    if compress is None:
        compress = storage == "mcap"
    with BagWriter(out, storage=storage, overwrite=overwrite, custom_data=data,
                   compress=compress) as writer:
        writer.add_topic(topic, IMAGE_TYPE)
        writer.add_topic(label_topic, EMOTION_ARRAY_TYPE)
        bar = tqdm(total=total or None, unit="frame", desc="make bag", disable=not progress,
                   file=sys.stderr)
        try:
            for index, (frame, faces) in enumerate(items):
                stamp = start_ns + round(index * 1e9 / fps)
                if csv_labels is not None:
                    label = csv_labels.label_at(index, index / fps)
                    faces = None if label is None else [LabelFace(label, None)]
                writer.write_message(topic, stamp, make_image(frame, "bgr8", stamp, frame_id))
                if faces is not None:
                    writer.write_message(label_topic, stamp, make_label(
                        stamp, frame_id, [(f.label, f.box) for f in faces]))
                    labelled += 1
                bar.update(1)
        finally:
            bar.close()
        counts = dict(writer.counts)
    if labelled == 0:
        print(f"make bag: warning: no frame of {out} is labelled", file=sys.stderr)
    return counts


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="emotion_make_bag", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See emotion_perception/bags/README.md.")
    p.add_argument("--out", required=True, type=Path, help="bag directory to create")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap",
                   help="rosbag2 storage plugin (default mcap)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", type=Path, help="video file")
    src.add_argument("--folder", type=Path, help="image folder (DIR/*.png or DIR/<class>/*.png)")
    src.add_argument("--npz", type=Path, help="FER npz (images, labels, usage)")
    p.add_argument("--split", default="PublicTest", help="npz: rows of this usage "
                   "(default PublicTest; '' = all)")
    p.add_argument("--limit", type=int, default=0, help="npz: first N faces only (0 = all)")
    p.add_argument("--repeat", type=int, default=1, help="npz: frames per face (default 1)")
    p.add_argument("--canvas", default=None, help="WxH frame to paste faces into (npz default "
                   "640x480; folder default none = images as they are)")
    p.add_argument("--face-size", type=int, default=DEFAULT_FACE_SIZE,
                   help=f"pasted face side in pixels (default {DEFAULT_FACE_SIZE})")
    p.add_argument("--scenes", action="store_true", help="npz: rotated faces of several sizes "
                   "on textured backgrounds, sometimes two per frame (see the module doc)")
    p.add_argument("--seed", type=int, default=0, help="--scenes: random seed (default 0)")
    p.add_argument("--min-face", type=float, default=80.0, help="--scenes: smallest face side")
    p.add_argument("--max-face", type=float, default=320.0, help="--scenes: largest face side")
    p.add_argument("--max-rotation", type=float, default=25.0,
                   help="--scenes: in-plane rotation range, +- degrees (default 25)")
    p.add_argument("--two-face-share", type=float, default=0.3,
                   help="--scenes: share of frames with two faces (default 0.3)")
    p.add_argument("--labels", type=Path, help="CSV: frame_index,label or start_s,end_s,label")
    p.add_argument("--fps", type=float, default=None, help="frame rate of the stamps (default "
                   "15; a video's own rate when known)")
    p.add_argument("--start-time", type=float, default=None,
                   help="stamp of the first frame in seconds since the epoch (default: now)")
    p.add_argument("--frame-id", default="camera", help="header frame_id (default camera)")
    p.add_argument("--topic", default=DEFAULT_IMAGE_TOPIC, help="image topic")
    p.add_argument("--label-topic", default=LABEL_TOPIC, help="ground-truth topic")
    p.add_argument("--no-compression", action="store_true", help="mcap: do not zstd-compress "
                   "the chunks (sqlite3 bags are never compressed)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Make a labelled bag; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.limit < 0 or args.repeat < 1:
            raise ValueError("--limit must be >= 0 and --repeat >= 1")
        csv_labels = read_label_csv(args.labels) if args.labels else None
        fps = args.fps
        source = ""
        if args.scenes and not args.npz:
            raise ValueError("--scenes needs --npz")
        if args.npz:
            if csv_labels is not None:
                raise ValueError("--labels cannot be combined with --npz (the npz has labels)")
            canvas = parse_canvas(args.canvas or "%dx%d" % DEFAULT_CANVAS)
            if args.scenes:
                total, items = scene_items(args.npz, args.split, args.limit, canvas,
                                           args.repeat, args.seed,
                                           (args.min_face, args.max_face), args.max_rotation,
                                           args.two_face_share)
                source = f"npz-scenes:{args.npz.name}:{args.split or 'all'}:seed{args.seed}"
            else:
                total, items = npz_items(args.npz, args.split, args.limit, canvas,
                                         args.face_size, args.repeat)
                source = f"npz:{args.npz.name}:{args.split or 'all'}"
        elif args.folder:
            canvas = parse_canvas(args.canvas) if args.canvas else None
            total, items, by_class = folder_items(args.folder, canvas, args.face_size)
            if by_class and csv_labels is not None:
                raise ValueError("--labels cannot be combined with class sub-folders")
            source = f"folder:{args.folder.name}"
        else:
            total, items, video_fps = video_items(args.video)
            fps = fps or video_fps or None
            source = f"video:{args.video.name}"
        fps = fps or 15.0
        start_ns = None if args.start_time is None else int(round(args.start_time * 1e9))
        counts = write_bag(args.out, items, fps, total=total, storage=args.storage,
                           topic=args.topic, frame_id=args.frame_id,
                           label_topic=args.label_topic, start_ns=start_ns,
                           csv_labels=csv_labels, overwrite=args.overwrite,
                           custom_data={"emotion_perception.source": source},
                           progress=not args.quiet,
                           compress=args.storage == "mcap" and not args.no_compression)
    except (ValueError, OSError) as exc:  # BagError is a ValueError
        print(f"emotion_make_bag: error: {exc}", file=sys.stderr)
        return 2
    print(f"emotion_make_bag: wrote {args.out} ({args.storage}): "
          + ", ".join(f"{t} {n} msgs" for t, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
