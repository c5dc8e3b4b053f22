"""Reading rosbag2 bags (mcap or sqlite3) without ROS: topics, images, labels, emotions.

:class:`BagReader` opens a rosbag2 directory (``metadata.yaml`` + storage files), a storage
file inside one, or a bare ``.mcap`` / ``.db3`` file without ``metadata.yaml``. Every problem
is raised as :class:`BagError` (a ``ValueError``) whose message names the path and says what is
wrong: a missing path, a corrupt or truncated file, a bag without an image topic (the message
lists the topics that exist), an unknown image encoding (topic, encoding and the supported
encodings), a requested topic that is not in the bag.

Images (``sensor_msgs/Image`` in any encoding :mod:`emotion_perception.core.image_conversion`
supports, or ``sensor_msgs/CompressedImage`` jpeg/png) are decoded to NumPy arrays and a BGR
copy for the detector. Ground-truth labels (see :mod:`.typestore`) are matched to images by
header stamp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..core.image_conversion import (DEFAULT_MAX_PIXELS, ENCODINGS, ImageConversionError,
                                     encoding_info, image_to_array, to_bgr8)
from ..core.types import Box
from .typestore import (COMPRESSED_IMAGE_TYPE, DEFAULT_IMAGE_TOPIC, EMOTION_ARRAY_TYPE,
                        IMAGE_TYPE, IMAGE_TYPES, LABEL_TOPIC, deserialize, stamp_to_ns)

STORAGE_SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}


class BagError(ValueError):
    """A bag that cannot be read as asked; the message names the path and the reason."""


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag."""

    name: str
    msgtype: str
    count: int


@dataclass
class BagInfo:
    """What a bag holds."""

    path: Path
    storage: str                        # "mcap" or "sqlite3"
    topics: dict[str, TopicInfo]
    message_count: int
    start_ns: int
    end_ns: int

    @property
    def image_topics(self) -> list[str]:
        """Return the topics of type sensor_msgs/Image or CompressedImage, in name order."""
        return sorted(t.name for t in self.topics.values() if t.msgtype in IMAGE_TYPES)

    @property
    def duration_s(self) -> float:
        """Return the time between the first and the last message in seconds."""
        return max(0, self.end_ns - self.start_ns) * 1e-9

    def describe_topics(self) -> str:
        """Return 'name (type, N msgs), ...' of all topics, or '(none)'."""
        if not self.topics:
            return "(none)"
        return ", ".join(f"{t.name} ({t.msgtype}, {t.count} msgs)"
                         for t in sorted(self.topics.values(), key=lambda t: t.name))


@dataclass(frozen=True)
class LabelFace:
    """One labelled face of one image: the true class and the face box when known."""

    label: int
    box: Box | None = None


@dataclass
class Frame:
    """One image of a bag with its ground truth (if any)."""

    index: int                          # position among the image topic's messages
    stamp_ns: int                       # header stamp
    log_ns: int                         # the bag's record (receive) time
    frame_id: str
    encoding: str
    image: np.ndarray | None            # decoded pixels, (H, W) or (H, W, C)
    bgr: np.ndarray | None              # (H, W, 3) uint8 BGR for the detector
    labels: list[LabelFace] | None = None  # None: unlabelled; []: labelled, no face
    error: str = ""                     # why the image could not be decoded (skip mode)
    header: Any = field(default=None, repr=False)

    @property
    def stamp(self) -> float:
        """Return the header stamp in seconds."""
        return self.stamp_ns * 1e-9

    @property
    def label(self) -> int | None:
        """Return the frame's scored label: that of the largest labelled face.

        Faces without a box count as size 0; among equals the first wins. None when the frame
        is unlabelled or labelled as holding no face.
        """
        if not self.labels:
            return None
        best = max(range(len(self.labels)),
                   key=lambda i: (self.labels[i].box.area if self.labels[i].box else 0, -i))
        return self.labels[best].label


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _resolve(path: Path) -> tuple[str, Path]:
    """Return ('dir', bag directory) or ('file', storage file) for a user-given path."""
    if not path.exists():
        raise BagError(f"bag not found: {path} does not exist")
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return "dir", path
        files = [p for p in sorted(path.iterdir()) if p.suffix in STORAGE_SUFFIXES]
        if len(files) == 1:
            return "file", files[0]
        raise BagError(f"{path} is not a rosbag2 directory: it has no metadata.yaml and "
                       f"{'several' if files else 'no'} .mcap/.db3 storage files")
    if path.suffix not in STORAGE_SUFFIXES:
        raise BagError(f"{path} is not a bag: expected a rosbag2 directory, an .mcap or a .db3 "
                       "file")
    if (path.parent / "metadata.yaml").is_file():
        return "dir", path.parent
    return "file", path


class BagReader:
    """Read a rosbag2 bag (directory or bare storage file); use as a context manager.

    All errors are :class:`BagError`. Messages come in record-time order.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._kind, self._target = _resolve(self.path)
        self._reader: Any = None
        self.info: BagInfo | None = None

    def __enter__(self) -> "BagReader":
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> None:
        """Open the bag and read its topic list."""
        from rosbags.rosbag2 import Reader
        from rosbags.rosbag2.storage_mcap import McapReader
        from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

        if self._kind == "dir":
            reader: Any = Reader(self._target)
        else:
            cls = McapReader if self._target.suffix == ".mcap" else Sqlite3Reader
            reader = cls(self._target)
        try:
            reader.open()
        except PermissionError as exc:
            raise BagError(f"cannot read bag {self.path}: {_reason(exc)}") from exc
        except Exception as exc:  # rosbags' ReaderError, apsw errors, struct errors, YAML, ...
            raise BagError(f"cannot read bag {self.path}: {_reason(exc)} (the file may be "
                           "corrupt or truncated, e.g. a recording that was not closed "
                           "cleanly)") from exc
        self._reader = reader
        topics: dict[str, TopicInfo] = {}
        for conn in reader.connections:
            old = topics.get(conn.topic)
            count = int(conn.msgcount) + (old.count if old else 0)
            topics[conn.topic] = TopicInfo(conn.topic, conn.msgtype, count)
        if self._kind == "dir":
            storage_id = "mcap" if any(self._target.glob("*.mcap")) else "sqlite3"
        else:
            storage_id = STORAGE_SUFFIXES[self._target.suffix]
        if self._kind == "dir":
            start, end, count = reader.start_time, reader.end_time, reader.message_count
        else:
            meta = reader.metadata
            start, end, count = meta.start_time, meta.end_time, meta.message_count
        if not count:
            start = end = 0
        self.info = BagInfo(self.path, storage_id, topics, int(count), int(start), int(end))

    def close(self) -> None:
        """Close the bag (idempotent)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            try:
                reader.close()
            except Exception:  # closing a half-broken reader: nothing to report
                pass

    def _connections(self, topics: Iterable[str]) -> list[Any]:
        wanted = set(topics)
        return [c for c in self._reader.connections if c.topic in wanted]

    def require_topic(self, topic: str, msgtypes: Sequence[str] | None = None,
                      what: str = "topic") -> TopicInfo:
        """Return the topic's info; raise BagError if missing or of another type."""
        assert self.info is not None, "open the reader first"
        info = self.info.topics.get(topic)
        if info is None:
            raise BagError(f"bag {self.path} has no {what} {topic!r}; its topics: "
                           f"{self.info.describe_topics()}")
        if msgtypes and info.msgtype not in msgtypes:
            raise BagError(f"bag {self.path}: {what} {topic!r} has type {info.msgtype}, "
                           f"expected {' or '.join(msgtypes)}")
        return info

    def raw_messages(self, topics: Iterable[str]) -> Iterator[tuple[str, str, int, bytes]]:
        """Yield (topic, msgtype, record time ns, CDR bytes) of ``topics`` in record order."""
        if self._reader is None:
            raise BagError(f"bag {self.path} is not open")
        conns = self._connections(topics)
        if not conns:
            return
        try:
            if self._kind == "dir":
                source = self._reader.messages(connections=conns)
            else:
                source = self._reader.messages(conns)
            for conn, log_ns, raw in source:
                yield conn.topic, conn.msgtype, int(log_ns), raw
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f"cannot read messages of bag {self.path}: {_reason(exc)} (the file "
                           "may be corrupt or truncated)") from exc

    def messages(self, topics: Iterable[str]) -> Iterator[tuple[str, int, Any]]:
        """Yield (topic, record time ns, deserialized typestore message) of ``topics``."""
        for topic, msgtype, log_ns, raw in self.raw_messages(topics):
            yield topic, log_ns, _deserialize(raw, msgtype, topic, self.path)

    # -- images and labels --------------------------------------------------------------------
    def image_topic(self, requested: str | None = None) -> str:
        """Return the image topic to use: ``requested`` (checked) or the bag's only one.

        With several image topics and none requested, :data:`DEFAULT_IMAGE_TOPIC` (or a topic
        ending in ``image_raw``) is taken when present; otherwise the choice is the user's.
        """
        assert self.info is not None, "open the reader first"
        if requested:
            return self.require_topic(requested, IMAGE_TYPES, "image topic").name
        found = self.info.image_topics
        if not found:
            raise BagError(f"bag {self.path} has no image topic (sensor_msgs/msg/Image or "
                           f"CompressedImage); its topics: {self.info.describe_topics()}")
        if len(found) == 1:
            return found[0]
        if DEFAULT_IMAGE_TOPIC in found:
            return DEFAULT_IMAGE_TOPIC
        raw = [t for t in found if t.endswith("image_raw")]
        if len(raw) == 1:
            return raw[0]
        raise BagError(f"bag {self.path} has several image topics ({', '.join(found)}); choose "
                       "one with --image-topic")

    def labels(self, topic: str | None = LABEL_TOPIC, required: bool = False
               ) -> dict[int, list[LabelFace]]:
        """Return {header stamp ns: labelled faces} from the label topic.

        A missing topic gives {} unless ``required``. Several label messages with one stamp
        are merged.
        """
        assert self.info is not None, "open the reader first"
        if not topic or (topic not in self.info.topics and not required):
            return {}
        self.require_topic(topic, [EMOTION_ARRAY_TYPE], "label topic")
        out: dict[int, list[LabelFace]] = {}
        for _, _, msg in self.messages([topic]):
            faces = out.setdefault(stamp_to_ns(msg.header.stamp), [])
            for e in msg.emotions:
                roi = e.roi
                box = Box(int(roi.x_offset), int(roi.y_offset), int(roi.width),
                          int(roi.height)) if roi.width and roi.height else None
                faces.append(LabelFace(int(e.label), box))
        return out

    def frames(self, image_topic: str | None = None, label_topic: str | None = LABEL_TOPIC,
               max_pixels: int = DEFAULT_MAX_PIXELS, skip_invalid: bool = False,
               labels_required: bool = False) -> Iterator[Frame]:
        """Yield every image of the image topic, decoded, with its labels.

        An unsupported encoding raises :class:`BagError` at once. Other undecodable images
        raise too, unless ``skip_invalid``: then they are yielded with ``error`` set and no
        pixels.
        """
        topic = self.image_topic(image_topic)
        labels = self.labels(label_topic, required=labels_required)
        index = 0
        for _, msgtype, log_ns, raw in self.raw_messages([topic]):
            msg = _deserialize(raw, msgtype, topic, self.path)
            stamp_ns = stamp_to_ns(msg.header.stamp)
            encoding = getattr(msg, "encoding", None) or getattr(msg, "format", "")
            frame = Frame(index=index, stamp_ns=stamp_ns, log_ns=log_ns,
                          frame_id=msg.header.frame_id, encoding=encoding, image=None, bgr=None,
                          labels=labels.get(stamp_ns), header=msg.header)
            try:
                frame.image, frame.bgr, frame.encoding = decode_image(msg, msgtype, max_pixels)
            except ImageConversionError as exc:
                if msgtype == IMAGE_TYPE and msg.encoding not in ENCODINGS:
                    raise BagError(f"bag {self.path}: topic {topic!r} has images in encoding "
                                   f"{msg.encoding!r}, which is not supported; supported "
                                   f"encodings: {', '.join(ENCODINGS)}") from exc
                if not skip_invalid:
                    raise BagError(f"bag {self.path}: image {index} on {topic!r} (stamp "
                                   f"{stamp_ns * 1e-9:.6f}) cannot be decoded: {exc}") from exc
                frame.error = str(exc)
            yield frame
            index += 1


def _deserialize(raw: bytes, msgtype: str, topic: str, path: Path) -> Any:
    try:
        return deserialize(raw, msgtype)
    except KeyError as exc:
        raise BagError(f"bag {path}: topic {topic!r} has type {msgtype}, which this reader does "
                       "not know (ROS 2 Jazzy standard types and emotion_msgs only)") from exc
    except Exception as exc:
        raise BagError(f"bag {path}: a message on {topic!r} ({msgtype}) cannot be decoded: "
                       f"{_reason(exc)} (corrupt data?)") from exc


def decode_image(msg: Any, msgtype: str = IMAGE_TYPE, max_pixels: int = DEFAULT_MAX_PIXELS
                 ) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (pixels, BGR uint8 copy for the detector, encoding) of an image message.

    ``sensor_msgs/Image`` goes through :func:`~..core.image_conversion.image_to_array`;
    ``CompressedImage`` (jpeg, png) is decoded with OpenCV into bgr8, bgra8 or mono8/16.
    Raises ImageConversionError for what cannot be decoded.
    """
    if msgtype == COMPRESSED_IMAGE_TYPE:
        import cv2

        data = np.asarray(msg.data, dtype=np.uint8)
        array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if array is None:
            raise ImageConversionError(f"compressed image (format {msg.format!r}) cannot be "
                                       "decoded")
        if array.shape[0] * array.shape[1] > max_pixels:
            raise ImageConversionError(f"image {array.shape[1]}x{array.shape[0]} is larger "
                                       f"than the limit of {max_pixels} pixels")
        channels = 1 if array.ndim == 2 else array.shape[2]
        bits = "16" if array.dtype == np.uint16 else "8"
        encoding = {1: f"mono{bits}", 3: f"bgr{bits}", 4: f"bgra{bits}"}.get(channels)
        if encoding is None or array.dtype not in (np.uint8, np.uint16):
            raise ImageConversionError(f"compressed image decodes to an unsupported layout "
                                       f"{array.shape} {array.dtype}")
        return array, to_bgr8(array, encoding), encoding
    encoding_info(msg.encoding)  # unknown encodings fail here, before any other check
    array = image_to_array(msg, max_pixels=max_pixels)
    return array, to_bgr8(array, msg.encoding), msg.encoding


def bag_info(path: str | Path) -> BagInfo:
    """Return the topics, counts and time range of a bag (raises BagError)."""
    with BagReader(path) as reader:
        assert reader.info is not None
        return reader.info


def read_emotion_arrays(path: str | Path, topic: str = "/emotion"
                        ) -> tuple[dict[int, Any], int]:
    """Return ({header stamp ns: EmotionArray}, duplicates) of one topic of a bag.

    The first message of each stamp is kept; later ones with the same stamp are counted as
    duplicates. Raises BagError when the topic is missing or not an EmotionArray.
    """
    out: dict[int, Any] = {}
    duplicates = 0
    with BagReader(path) as reader:
        reader.require_topic(topic, [EMOTION_ARRAY_TYPE], "emotion topic")
        for _, _, msg in reader.messages([topic]):
            stamp = stamp_to_ns(msg.header.stamp)
            if stamp in out:
                duplicates += 1
                continue
            out[stamp] = msg
    return out, duplicates


class BagWriter:
    """Write a new rosbag2 bag (mcap or sqlite3) with the shared typestore; a context manager.

    Topics are added with :meth:`add_topic` (the message definition and type hash come from
    the typestore, as ``ros2 bag record`` stores them). ``compress`` (mcap only) compresses the
    mcap chunks with zstd, which every mcap reader (``ros2 bag``, Foxglove) decodes itself.
    :meth:`write` takes CDR bytes (as from
    ``rclpy.serialization.serialize_message`` or a raw subscription), :meth:`write_message` a
    typestore message. :meth:`close` writes the index and ``metadata.yaml``: a bag is complete
    only after it. Errors are :class:`BagError`.
    """

    def __init__(self, path: str | Path, storage: str = "mcap", overwrite: bool = False,
                 custom_data: dict[str, str] | None = None, compress: bool = False) -> None:
        from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

        from .typestore import BAG_VERSION

        if storage not in ("mcap", "sqlite3"):
            raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise BagError(f"output bag {self.path} exists already; choose another path or "
                               "pass --overwrite")
            remove_bag(self.path)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        if compress:
            if storage != "mcap":
                raise ValueError("compress is only supported with mcap storage (zstd chunks)")
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(str(key), str(value))
        try:
            self._writer.open()
        except Exception as exc:
            raise BagError(f"cannot create bag {self.path}: {_reason(exc)}") from exc
        self.storage = storage
        self._conns: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.closed = False

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def topics(self) -> dict[str, str]:
        """Return {topic: msgtype} of the topics added so far."""
        return {t: c.msgtype for t, c in self._conns.items()}

    def add_topic(self, topic: str, msgtype: str, qos_profiles: Sequence[Any] = ()) -> None:
        """Add a topic of ``msgtype`` (a type the typestore knows)."""
        from .typestore import get_typestore

        if topic in self._conns:
            if self._conns[topic].msgtype != msgtype:
                raise BagError(f"topic {topic!r} already added with type "
                               f"{self._conns[topic].msgtype}, not {msgtype}")
            return
        store = get_typestore()
        if msgtype not in store.types:
            raise BagError(f"cannot record {topic!r}: type {msgtype} is not in the typestore "
                           "(ROS 2 Jazzy standard types and emotion_msgs)")
        self._conns[topic] = self._writer.add_connection(
            topic, msgtype, typestore=store, offered_qos_profiles=list(qos_profiles))
        self.counts[topic] = 0

    def write(self, topic: str, log_ns: int, raw: bytes | memoryview) -> None:
        """Append one CDR-serialized message at record time ``log_ns``."""
        if self.closed:
            raise BagError(f"bag {self.path} is closed")
        self._writer.write(self._conns[topic], int(log_ns), raw)
        self.counts[topic] += 1

    def write_message(self, topic: str, log_ns: int, msg: Any) -> None:
        """Append one typestore message (serialized here)."""
        from .typestore import serialize

        self.write(topic, log_ns, serialize(msg, self._conns[topic].msgtype))

    def close(self) -> None:
        """Finish the bag: index, summary and metadata.yaml (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._writer.close()


def remove_bag(path: str | Path) -> None:
    """Delete a rosbag2 directory; refuse anything that does not look like one."""
    import shutil

    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise BagError(f"{path} is a file, not a bag directory; not removing it")
    entries = list(path.iterdir())
    allowed = {".mcap", ".db3", ".yaml", ".zstd", ".db3-shm", ".db3-wal"}
    if any(p.is_dir() or p.suffix not in allowed for p in entries):
        raise BagError(f"{path} holds files other than a bag's; not removing it")
    shutil.rmtree(path)


class ThreadedBagWriter:
    """A :class:`BagWriter` owned by one background thread; any thread may add and write.

    The storage libraries are not thread-safe (Python's sqlite3 refuses calls from threads
    other than the creating one), while ROS callbacks run on executor threads. Here every
    call only enqueues; the writer thread creates the bag, writes in call order and finishes
    the file on :meth:`close`, which raises :class:`BagError` if anything failed.
    """

    def __init__(self, path: str | Path, storage: str = "mcap", overwrite: bool = False,
                 custom_data: dict[str, str] | None = None, compress: bool = False) -> None:
        import queue
        import threading

        self.path = Path(path)
        self._queue: Any = queue.Queue()
        self._opened = threading.Event()
        self._error: BaseException | None = None
        self.closed = False
        self._thread = threading.Thread(
            target=self._run, args=(dict(path=path, storage=storage, overwrite=overwrite,
                                         custom_data=custom_data, compress=compress),),
            name="bag_writer", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._error is not None:
            error, self._error = self._error, None
            self._thread.join()
            raise error

    def _run(self, kwargs: dict[str, Any]) -> None:
        try:
            writer = BagWriter(**kwargs)
        except BaseException as exc:  # reported by __init__
            self._error = exc
            self._opened.set()
            return
        self._opened.set()
        while True:
            op = self._queue.get()
            if op is None:
                break
            try:
                if op[0] == "add":
                    writer.add_topic(op[1], op[2])
                else:
                    writer.write(op[1], op[2], op[3])
            except Exception as exc:  # keep the first error, keep writing the rest
                if self._error is None:
                    self._error = exc
        try:
            writer.close()
        except Exception as exc:
            if self._error is None:
                self._error = exc

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Add a topic (the type is checked here, at once)."""
        from .typestore import get_typestore

        if msgtype not in get_typestore().types:
            raise BagError(f"cannot record {topic!r}: type {msgtype} is not in the typestore "
                           "(ROS 2 Jazzy standard types and emotion_msgs)")
        self._queue.put(("add", topic, msgtype))

    def write(self, topic: str, log_ns: int, raw: bytes | memoryview) -> None:
        """Queue one CDR-serialized message."""
        if not self.closed:
            self._queue.put(("write", topic, int(log_ns), bytes(raw)))

    def close(self) -> None:
        """Write what is queued, finish the file; raise BagError if anything failed."""
        if self.closed:
            return
        self.closed = True
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise BagError(f"recording into {self.path} failed: {_reason(self._error)}") \
                from self._error
