"""Bags without DDS: make, read (also with independent readers), errors, offline evaluation."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import PACKAGE_DIR, REPO_ROOT

from emotion_perception.bags import typestore as ts
from emotion_perception.bags.evaluate import (EvalRun, FacePrediction, FrameResult,
                                              evaluate_predictions, main as eval_main,
                                              predictions_json, resolve_params, score,
                                              score_predictions)
from emotion_perception.bags.io import BagError, BagReader, BagWriter, LabelFace, bag_info
from emotion_perception.bags.make_bag import (main as make_bag_main, paste_on_canvas,
                                              read_label_csv, write_bag)
from emotion_perception.bags.replay import cdr_header_stamp_ns
from emotion_perception.bags.report import write_outputs
from emotion_perception.core.classes import CLASS_NAMES
from emotion_perception.core.image_conversion import ENCODINGS
from emotion_perception.core.sample_input import demo_frames, scene_boxes
from emotion_perception.core.types import Box

START_NS = 1_700_000_000 * 10**9
FPS = 10.0


def _scene_items(n: int = 6, labels: list[int | None] | None = None):
    labels = labels if labels is not None else [3] * n
    for i, (t, frame) in enumerate(demo_frames(n, FPS)):
        label = labels[i]
        yield frame, (None if label is None else [LabelFace(label, scene_boxes(1, t=t)[0])])


@pytest.fixture(scope="module")
def scene_bag(tmp_path_factory) -> Path:
    """Six real face frames (sample_input), the 3rd unlabelled, labels happy then sad."""
    out = tmp_path_factory.mktemp("bags") / "scene"
    write_bag(out, _scene_items(6, [3, 3, None, 4, 4, 4]), FPS, start_ns=START_NS,
              progress=False)
    return out


# -- typestore ------------------------------------------------------------------------------
def test_typestore_knows_emotion_msgs_with_rosidl_hashes():
    store = ts.get_typestore()
    assert "emotion_msgs/msg/EmotionArray" in store.types
    assert store.types["emotion_msgs/msg/Emotion"].CLASS_NAMES == ",".join(CLASS_NAMES)
    src = Path(ts.__file__).resolve().parents[3] / "emotion_msgs" / "msg"
    assert sorted(ts.emotion_msg_types(src)) == sorted(
        f"emotion_msgs/msg/{p.stem}" for p in src.glob("*.msg"))
    # the hash rosidl generated at build time (when the messages were built) must match ours
    built = REPO_ROOT / "install" / "emotion_msgs" / "share" / "emotion_msgs" / "msg"
    if not (built / "EmotionArray.json").is_file():
        pytest.skip("emotion_msgs not built")
    data = json.loads((built / "EmotionArray.json").read_text())
    hashes = {d["type_name"]: d["hash_string"] for d in data["type_hashes"]}
    assert hashes["emotion_msgs/msg/EmotionArray"] == store.hash_rihs01(ts.EMOTION_ARRAY_TYPE)


def test_label_message_is_one_hot_with_image_header_and_roi():
    msg = ts.make_label(START_NS + 5, "cam", [(4, Box(1, 2, 30, 40)), (0, None)])
    raw = ts.serialize(msg)
    back = ts.deserialize(raw, ts.EMOTION_ARRAY_TYPE)
    assert ts.stamp_to_ns(back.header.stamp) == START_NS + 5 and back.header.frame_id == "cam"
    first, second = back.emotions
    assert first.label == 4 and first.label_name == "sad" and first.confidence == 1.0
    assert np.array_equal(first.probabilities, np.eye(7, dtype=np.float32)[4])
    assert (first.roi.x_offset, first.roi.y_offset, first.roi.width, first.roi.height) == \
        (1, 2, 30, 40)
    assert second.roi.width == 0 and second.face_id == 0
    with pytest.raises(ValueError, match="class index"):
        ts.make_label(0, "cam", [(7, None)])


# -- making and reading ---------------------------------------------------------------------
def test_scene_bag_roundtrip(scene_bag: Path):
    info = bag_info(scene_bag)
    assert info.storage == "mcap"
    assert info.topics[ts.DEFAULT_IMAGE_TOPIC].count == 6
    assert info.topics[ts.LABEL_TOPIC].count == 5
    assert info.image_topics == [ts.DEFAULT_IMAGE_TOPIC]
    with BagReader(scene_bag) as reader:
        frames = list(reader.frames())
    expected = [frame for _, frame in demo_frames(6, FPS)]
    assert [f.stamp_ns for f in frames] == [START_NS + round(i * 1e9 / FPS) for i in range(6)]
    assert [f.label for f in frames] == [3, 3, None, 4, 4, 4]
    for f, want, (t, _) in zip(frames, expected, demo_frames(6, FPS)):
        assert f.encoding == "bgr8" and f.frame_id == "camera"
        assert np.array_equal(f.bgr, want)
        if f.labels:
            assert f.labels[0].box == scene_boxes(1, t=t)[0]


def test_frame_label_is_that_of_the_largest_labelled_face():
    from emotion_perception.bags.io import Frame

    frame = Frame(0, 0, 0, "", "bgr8", None, None,
                  [LabelFace(1, Box(0, 0, 10, 10)), LabelFace(5, Box(0, 0, 20, 20)),
                   LabelFace(2, None)])
    assert frame.label == 5
    assert Frame(0, 0, 0, "", "bgr8", None, None, []).label is None


def test_mcap_bag_opens_with_the_mcap_library(scene_bag: Path):
    from mcap.reader import make_reader

    counts: dict[str, int] = {}
    with open(next(scene_bag.glob("*.mcap")), "rb") as fh:
        reader = make_reader(fh)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        schemas = {s.name for s in summary.schemas.values()}
        assert {ts.IMAGE_TYPE, ts.EMOTION_ARRAY_TYPE} <= schemas
        for _, channel, message in reader.iter_messages():
            assert channel.message_encoding == "cdr"
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            assert message.log_time == cdr_header_stamp_ns(message.data)  # record time = stamp
    info = bag_info(scene_bag)
    assert counts == {t: i.count for t, i in info.topics.items()}


def test_sqlite_bag_opens_with_plain_sqlite3(tmp_path: Path):
    out = tmp_path / "sq"
    write_bag(out, _scene_items(4), FPS, storage="sqlite3", start_ns=START_NS, progress=False)
    db = next(out.glob("*.db3"))
    con = sqlite3.connect(db)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"schema", "metadata", "topics", "messages"} <= tables
        rows = dict(con.execute("SELECT t.name, COUNT(m.id) FROM topics t JOIN messages m ON "
                                "m.topic_id = t.id GROUP BY t.name"))
        types = dict(con.execute("SELECT name, type FROM topics"))
        stamps = [r[0] for r in con.execute(
            "SELECT m.timestamp FROM messages m JOIN topics t ON m.topic_id = t.id WHERE "
            "t.name = ? ORDER BY m.timestamp", (ts.DEFAULT_IMAGE_TOPIC,))]
    finally:
        con.close()
    assert rows == {ts.DEFAULT_IMAGE_TOPIC: 4, ts.LABEL_TOPIC: 4}
    assert types[ts.DEFAULT_IMAGE_TOPIC] == ts.IMAGE_TYPE
    assert stamps == [START_NS + round(i * 1e9 / FPS) for i in range(4)]
    assert bag_info(out).storage == "sqlite3"


def _humble_bag(path: Path) -> list[np.ndarray]:
    """Build a rosbag2 bag by hand as Humble's ``ros2 bag record`` writes it (sqlite3)."""
    path.mkdir()
    db_name = f"{path.name}_0.db3"
    con = sqlite3.connect(path / db_name)
    con.executescript("""
        CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
        CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL,
                              metadata TEXT NOT NULL);
        CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                            serialization_format TEXT NOT NULL,
                            offered_qos_profiles TEXT NOT NULL);
        CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,
                              timestamp INTEGER NOT NULL, data BLOB NOT NULL);
        CREATE INDEX timestamp_idx ON messages (timestamp ASC);
        INSERT INTO schema(schema_version, ros_distro) VALUES (3, 'humble');
    """)
    qos = ("- history: 3\n  depth: 0\n  reliability: 1\n  durability: 2\n  deadline:\n"
           "    sec: 9223372036\n    nsec: 854775807\n  lifespan:\n    sec: 9223372036\n"
           "    nsec: 854775807\n  liveliness: 1\n  liveliness_lease_duration:\n"
           "    sec: 9223372036\n    nsec: 854775807\n  avoid_ros_namespace_conventions: false")
    topics = [(1, "/cam/image", ts.IMAGE_TYPE), (2, "/chatter", "std_msgs/msg/String"),
              (3, ts.LABEL_TOPIC, ts.EMOTION_ARRAY_TYPE)]
    con.executemany("INSERT INTO topics VALUES (?, ?, ?, 'cdr', ?)",
                    [(i, n, t, qos) for i, n, t in topics])
    store = ts.get_typestore()
    rgb_frames = []
    for i in range(3):
        stamp = START_NS + i * 50_000_000
        rgb = np.random.default_rng(i).integers(0, 255, (6, 8, 3), dtype=np.uint8)
        rgb_frames.append(rgb)
        image = ts.make_image(rgb, "rgb8", stamp, "hand")
        chatter = store.types["std_msgs/msg/String"](data=f"hello {i}")
        label = ts.make_label(stamp, "hand", [(i, None)])
        for topic_id, msg in ((1, image), (2, chatter), (3, label)):
            raw = bytes(store.serialize_cdr(msg, msg.__msgtype__))
            con.execute("INSERT INTO messages (topic_id, timestamp, data) VALUES (?, ?, ?)",
                        (topic_id, stamp + topic_id, raw))
    con.execute("INSERT INTO metadata(metadata_version, metadata) VALUES (5, ?)",
                ("version: 5\nstorage_identifier: sqlite3\n",))
    con.commit()
    con.close()
    topic_entries = "".join(
        f"""    - topic_metadata:
        name: {n}
        type: {t}
        serialization_format: cdr
        offered_qos_profiles: {json.dumps(qos)}
      message_count: 3
""" for _, n, t in topics)
    (path / "metadata.yaml").write_text(f"""rosbag2_bagfile_information:
  version: 5
  storage_identifier: sqlite3
  duration:
    nanoseconds: 100000003
  starting_time:
    nanoseconds_since_epoch: {START_NS + 1}
  message_count: 9
  topics_with_message_count:
{topic_entries}  compression_format: ""
  compression_mode: ""
  relative_file_paths:
    - {db_name}
  files:
    - path: {db_name}
      starting_time:
        nanoseconds_since_epoch: {START_NS + 1}
      duration:
        nanoseconds: 100000003
      message_count: 9
""")
    return rgb_frames


def test_hand_built_humble_layout_bag_is_read(tmp_path: Path):
    bag = tmp_path / "humble_bag"
    rgb_frames = _humble_bag(bag)
    info = bag_info(bag)
    assert info.storage == "sqlite3" and info.message_count == 9
    assert info.topics["/chatter"].msgtype == "std_msgs/msg/String"
    with BagReader(bag) as reader:
        assert reader.image_topic() == "/cam/image"
        frames = list(reader.frames())
        chatter = [m.data for _, _, m in reader.messages(["/chatter"])]
    assert chatter == ["hello 0", "hello 1", "hello 2"]
    assert [f.label for f in frames] == [0, 1, 2]
    assert [f.stamp_ns for f in frames] == [START_NS + i * 50_000_000 for i in range(3)]
    for f, rgb in zip(frames, rgb_frames):
        assert f.encoding == "rgb8" and np.array_equal(f.image, rgb)
        assert np.array_equal(f.bgr, rgb[:, :, ::-1])
    # the bare storage file (no metadata.yaml next to it) is readable too
    bare = tmp_path / "bare.db3"
    bare.write_bytes(next(bag.glob("*.db3")).read_bytes())
    with BagReader(bare) as reader:
        assert [f.label for f in reader.frames()] == [0, 1, 2]


# -- errors ---------------------------------------------------------------------------------
def test_missing_path_and_non_bag_errors(tmp_path: Path):
    with pytest.raises(BagError, match=r"bag not found: .*nope does not exist"):
        BagReader(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="no metadata.yaml and no .mcap/.db3"):
        BagReader(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(BagError, match="is not a bag"):
        BagReader(tmp_path / "x.txt")


def test_truncated_mcap_gives_clear_error(scene_bag: Path, tmp_path: Path):
    copy = tmp_path / "trunc"
    copy.mkdir()
    (copy / "metadata.yaml").write_text((scene_bag / "metadata.yaml").read_text())
    data = next(scene_bag.glob("*.mcap")).read_bytes()
    (copy / "scene.mcap").write_bytes(data[:len(data) // 2])
    with pytest.raises(BagError) as exc:
        with BagReader(copy) as reader:
            list(reader.frames())
    text = str(exc.value)
    assert str(copy) in text and "truncated" in text and "magic" in text.lower()


def test_garbage_db3_gives_clear_error(tmp_path: Path):
    out = tmp_path / "garbage"
    write_bag(out, _scene_items(2), FPS, storage="sqlite3", start_ns=START_NS, progress=False)
    db = next(out.glob("*.db3"))
    db.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    with pytest.raises(BagError) as exc:
        bag_info(out)
    text = str(exc.value)
    assert str(out) in text and "corrupt" in text and "database" in text.lower()


def test_bag_without_image_topic_lists_its_topics(tmp_path: Path):
    out = tmp_path / "labels_only"
    with BagWriter(out) as writer:
        writer.add_topic(ts.LABEL_TOPIC, ts.EMOTION_ARRAY_TYPE)
        writer.write_message(ts.LABEL_TOPIC, START_NS, ts.make_label(START_NS, "c", []))
    with pytest.raises(BagError) as exc:
        with BagReader(out) as reader:
            reader.image_topic()
    assert "has no image topic" in str(exc.value)
    assert f"{ts.LABEL_TOPIC} ({ts.EMOTION_ARRAY_TYPE}, 1 msgs)" in str(exc.value)


def test_unknown_encoding_names_topic_encoding_and_supported(tmp_path: Path):
    out = tmp_path / "yuv"
    image_cls = ts.msg_class(ts.IMAGE_TYPE)
    with BagWriter(out) as writer:
        writer.add_topic("/cam/yuv", ts.IMAGE_TYPE)
        msg = image_cls(header=ts.make_header(START_NS, "c"), height=2, width=2,
                        encoding="yuv422_yuy2", is_bigendian=0, step=4,
                        data=np.zeros(8, np.uint8))
        writer.write_message("/cam/yuv", START_NS, msg)
    with pytest.raises(BagError) as exc:
        with BagReader(out) as reader:
            list(reader.frames())
    text = str(exc.value)
    assert "'/cam/yuv'" in text and "'yuv422_yuy2'" in text and "not supported" in text
    assert all(enc in text for enc in ENCODINGS)


def test_compressed_images_are_decoded_and_bad_ones_reported(tmp_path: Path):
    out = tmp_path / "compressed"
    image = np.random.default_rng(2).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    cls = ts.msg_class(ts.COMPRESSED_IMAGE_TYPE)
    payloads = [cv2.imencode(".png", image)[1].ravel(), np.frombuffer(b"not a png", np.uint8)]
    with BagWriter(out) as writer:
        writer.add_topic("/cam/compressed", ts.COMPRESSED_IMAGE_TYPE)
        for i, data in enumerate(payloads):
            writer.write_message("/cam/compressed", START_NS + i, cls(
                header=ts.make_header(START_NS + i, "c"), format="png", data=data))
    with BagReader(out) as reader:
        good, bad = list(reader.frames(skip_invalid=True))
        with pytest.raises(BagError, match=r"image 1 on '/cam/compressed' .* cannot be decoded"):
            list(reader.frames())
    assert good.encoding == "bgr8" and np.array_equal(good.bgr, image) and not good.error
    assert bad.bgr is None and "cannot be decoded" in bad.error


def test_requested_topics_must_exist(scene_bag: Path):
    with BagReader(scene_bag) as reader:
        with pytest.raises(BagError, match=r"no image topic '/nope'; its topics: "
                                           r"/camera/image_raw"):
            reader.image_topic("/nope")
        with pytest.raises(BagError, match=r"image topic '/ground_truth/emotion' has type "
                                           r"emotion_msgs/msg/EmotionArray"):
            reader.image_topic(ts.LABEL_TOPIC)
        with pytest.raises(BagError, match="no label topic '/labels'"):
            reader.labels("/labels", required=True)
        assert reader.labels("/labels") == {}


def test_writer_refuses_existing_bag_and_unknown_types(scene_bag: Path, tmp_path: Path):
    with pytest.raises(BagError, match="exists already"):
        BagWriter(scene_bag)
    with BagWriter(tmp_path / "w") as writer:
        with pytest.raises(BagError, match="not in the typestore"):
            writer.add_topic("/x", "my_msgs/msg/Unknown")


# -- make_bag inputs --------------------------------------------------------------------------
def test_label_csv_frames_ranges_and_errors(tmp_path: Path):
    frames_csv = tmp_path / "f.csv"
    frames_csv.write_text("frame_index,label\n0,happy\n2,4\n")
    labels = read_label_csv(frames_csv)
    assert [labels.label_at(i, i / FPS) for i in range(3)] == [3, None, 4]
    ranges_csv = tmp_path / "r.csv"
    ranges_csv.write_text("0.0,0.25,Angry\n0.25,1.0,surprise\n")
    labels = read_label_csv(ranges_csv)
    assert [labels.label_at(i, i / FPS) for i in (0, 2, 3, 9, 10)] == [0, 0, 5, 5, None]
    bad = tmp_path / "bad.csv"
    bad.write_text("0,happy\n1,joyful\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: unknown emotion class 'joyful'"):
        read_label_csv(bad)
    bad.write_text("0,1,happy\n0.5,2,sad\n")
    with pytest.raises(ValueError, match="overlap"):
        read_label_csv(bad)


def test_paste_on_canvas_scales_and_centres():
    face = np.full((48, 48), 200, np.uint8)
    frame, box = paste_on_canvas(face, (640, 480), 200)
    assert frame.shape == (480, 640, 3) and box == Box(220, 140, 200, 200)
    assert (frame[140:340, 220:420] == 200).all() and (frame[0, 0] != 200).any()


def test_make_bag_cli_npz_folder_and_video(tmp_path: Path, capsys):
    rng = np.random.default_rng(0)
    npz = tmp_path / "fer.npz"
    np.savez(npz, images=rng.integers(0, 255, (5, 48, 48), dtype=np.uint8),
             labels=np.array([0, 1, 2, 3, 4]),
             usage=np.array(["Training", "PublicTest", "PublicTest", "PublicTest", "x"]))
    assert make_bag_main(["--out", str(tmp_path / "n"), "--npz", str(npz), "--limit", "2",
                          "--repeat", "3", "--quiet", "--canvas", "320x240",
                          "--face-size", "150"]) == 0
    with BagReader(tmp_path / "n") as reader:
        frames = list(reader.frames())
    assert [f.label for f in frames] == [1, 1, 1, 2, 2, 2]
    assert frames[0].bgr.shape == (240, 320, 3) and frames[0].labels[0].box == \
        Box(85, 45, 150, 150)
    # class sub-folders
    for name, value in (("happy", 90), ("sad", 30)):
        (tmp_path / "folder" / name).mkdir(parents=True)
        image = np.full((20, 30, 3), value, np.uint8)
        cv2.imwrite(str(tmp_path / "folder" / name / "a.png"), image)
    assert make_bag_main(["--out", str(tmp_path / "f"), "--folder", str(tmp_path / "folder"),
                          "--storage", "sqlite3", "--fps", "5", "--quiet"]) == 0
    with BagReader(tmp_path / "f") as reader:
        frames = list(reader.frames())
    assert [f.label for f in frames] == [3, 4]
    assert frames[1].stamp_ns - frames[0].stamp_ns == 200_000_000
    # a video with time-range labels
    video = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    csv_path = tmp_path / "v.csv"
    csv_path.write_text("start_s,end_s,label\n0.0,0.3,neutral\n")
    assert make_bag_main(["--out", str(tmp_path / "v"), "--video", str(video), "--labels",
                          str(csv_path), "--quiet"]) == 0
    with BagReader(tmp_path / "v") as reader:
        frames = list(reader.frames())
    assert len(frames) == 6 and [f.label for f in frames] == [6, 6, 6, None, None, None]
    assert frames[1].stamp_ns - frames[0].stamp_ns == 100_000_000  # the video's own 10 fps
    # errors are reported, not raised
    capsys.readouterr()
    assert make_bag_main(["--out", str(tmp_path / "e"), "--npz", str(npz), "--labels",
                          str(csv_path)]) == 2
    assert "cannot be combined" in capsys.readouterr().err


# -- harder scene frames (rotated faces on textured backgrounds) --------------------------------
def _checker_faces(n: int = 6, side: int = 48) -> np.ndarray:
    """Square gray 'faces' whose top-left quadrant is black: orientation is visible."""
    faces = np.full((n, side, side), 220, np.uint8)
    faces[:, :side // 2, :side // 2] = 20
    return faces


def test_scenes_place_turn_and_label_every_face_once():
    from emotion_perception.bags.scenes import make_scenes

    faces = _checker_faces(12)
    labels = list(range(7)) + [0, 1, 2, 3, 4]
    scenes = list(make_scenes(faces, labels, seed=3, sizes=(80, 160), two_face_share=0.5,
                              photometric=False))
    seen = [f.index for s in scenes for f in s.faces]
    assert seen == list(range(12)) and any(len(s.faces) == 2 for s in scenes)
    for scene in scenes:
        assert scene.frame.shape == (480, 640, 3) and scene.frame.dtype == np.uint8
        for face in scene.faces:
            assert face.label == labels[face.index]
            assert 80 <= face.side <= 160 and abs(face.angle) <= 25.0
            corners = face.corners()
            assert corners.min() >= 0 and corners[0].max() <= 640 and corners[1].max() <= 480
            box = face.box
            assert box.clipped(640, 480) == box and abs(box.w - face.side) <= 1
            # the dark quadrant lies where the turned top-left corner went
            tl, centre = corners[:, 0], np.asarray(face.center)
            probe = (centre + 0.5 * (tl - centre)).round().astype(int)
            assert scene.frame[probe[1], probe[0]].mean() < 60
            far = (centre - 0.5 * (tl - centre)).round().astype(int)
            assert scene.frame[far[1], far[0]].mean() > 180
        if len(scene.faces) == 2:
            a, b = (f.box for f in scene.faces)
            assert a.iou(b) == 0.0
    again = list(make_scenes(faces, labels, seed=3, sizes=(80, 160), two_face_share=0.5,
                             photometric=False))
    np.testing.assert_array_equal(again[0].frame, scenes[0].frame)
    other = next(iter(make_scenes(faces, labels, seed=4)))
    assert not np.array_equal(other.frame, scenes[0].frame)


def test_scenes_argument_errors():
    from emotion_perception.bags.scenes import make_scenes

    faces = _checker_faces(2)
    for kwargs, word in ((dict(sizes=(100, 500)), "sizes"), (dict(max_rotation=120), "rotation"),
                         (dict(two_face_share=2.0), "two_face_share")):
        with pytest.raises(ValueError, match=word):
            make_scenes(faces, [0, 1], **kwargs)  # checked at once, before any frame
    with pytest.raises(ValueError, match="labels"):
        make_scenes(faces, [0])
    with pytest.raises(ValueError, match="square"):
        make_scenes(np.zeros((2, 48, 40), np.uint8), [0, 1])


def test_make_bag_scenes_labels_both_faces(tmp_path: Path, capsys):
    npz = tmp_path / "fer.npz"
    np.savez(npz, images=_checker_faces(8), labels=np.arange(8) % 7,
             usage=np.array(["PublicTest"] * 8))
    assert make_bag_main(["--out", str(tmp_path / "s"), "--npz", str(npz), "--scenes",
                          "--two-face-share", "1.0", "--max-face", "150", "--quiet"]) == 0
    with BagReader(tmp_path / "s") as reader:
        frames = list(reader.frames())
    assert len(frames) == 4 and all(len(f.labels) == 2 for f in frames)
    assert [lf.label for f in frames for lf in f.labels] == list(range(7)) + [0]
    assert make_bag_main(["--out", str(tmp_path / "e"), "--video", str(npz), "--scenes"]) == 2
    assert "--scenes needs --npz" in capsys.readouterr().err


def test_detector_eval_matching_and_scores():
    from emotion_perception.bags.detector_eval import match_faces, oracle_crop, parse_detector
    from emotion_perception.bags.scenes import SceneFace
    from emotion_perception.core.types import FaceDetection

    faces = [SceneFace(0, 0, (100.0, 100.0), 100.0, 10.0),
             SceneFace(1, 1, (300.0, 100.0), 100.0, 0.0)]
    dets = [FaceDetection(Box(280, 80, 40, 40)),   # right place, far too small
            FaceDetection(Box(60, 55, 90, 90)),    # face 0 (centre 105, 100)
            FaceDetection(Box(270, 70, 80, 80)),   # face 1, centre 14 px off
            FaceDetection(Box(262, 62, 80, 80))]   # face 1, centre 3 px off
    matched, extra = match_faces(faces, dets)
    assert matched == [1, 3] and extra == 2  # face 1 takes its closest box
    assert parse_detector("blazeface:model=full,input_side=192") == \
        ("blazeface:model=full,input_side=192", "blazeface", {"model": "full",
                                                              "input_side": 192})
    with pytest.raises(ValueError, match="key=value"):
        parse_detector("haar:oops")
    frame = np.zeros((200, 400, 3), np.uint8)
    frame[50:100, 50:100] = 255  # the top-left quadrant of an unturned 100 px face at (100, 100)
    crop = oracle_crop(frame, SceneFace(0, 0, (100.0, 100.0), 100.0, 0.0))
    assert crop.shape == (100, 100, 3)
    assert crop[:45, :45].min() == 255 and crop[55:, 55:].max() == 0


def test_detector_eval_end_to_end_on_a_tiny_npz(tmp_path: Path, capsys, tiny_model_path: Path):
    from emotion_perception.bags.detector_eval import main as eval_detectors_main
    from emotion_perception.core.sample_input import PORTRAIT_FACE_BOX, astronaut_face

    b = PORTRAIT_FACE_BOX
    face = cv2.cvtColor(astronaut_face()[b.y - 10:b.y + b.h + 10, b.x - 10:b.x + b.w + 10],
                        cv2.COLOR_BGR2GRAY)
    npz = tmp_path / "faces.npz"
    np.savez(npz, images=np.repeat(face[None], 6, axis=0), labels=np.arange(6),
             usage=np.array(["PublicTest"] * 6))
    out = tmp_path / "r.json"
    assert eval_detectors_main(["--npz", str(npz), "--detector", "haar", "--model-path",
                                str(tiny_model_path), "--min-face", "150", "--max-face", "220",
                                "--max-rotation", "5", "--json", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "haar / calibrated" in text and "oracle crop" in text and "ms/frame" in text
    rows = json.loads(out.read_text())["rows"]
    haar = rows["haar / calibrated"]
    assert haar["faces"] == 6 and haar["detection_rate"] >= 0.5
    assert rows["oracle crop (true square)"]["detection_rate"] == 1.0
    assert 0.0 <= haar["end_to_end_accuracy"] <= haar["detection_rate"]
    assert eval_detectors_main(["--npz", str(npz), "--detector", "haar", "--calibrate",
                                "--quiet", "--min-face", "150", "--max-face", "220"]) == 0
    assert "crop_margin" in capsys.readouterr().out
    assert eval_detectors_main(["--npz", str(tmp_path / "none.npz")]) == 2
    assert "not found" in capsys.readouterr().err


# -- scoring ---------------------------------------------------------------------------------
def _pred(label: int, box: Box, face_id: int = 1) -> FacePrediction:
    probs = np.full(7, 0.05, np.float32)
    probs[label] = 0.7
    return FacePrediction(face_id, probs, box)


def test_score_predictions_by_hand():
    small, big = Box(0, 0, 10, 10), Box(50, 0, 30, 30)
    labels = [0, 0, 0, 1, 1, 1, 2]
    preds = [[_pred(0, big)], [_pred(1, big), _pred(0, small)], [_pred(0, big)],
             [_pred(1, big)], [_pred(1, big)], [_pred(1, big)], []]
    frames = [FrameResult(i, START_NS + i * 100_000_000, [LabelFace(g)], p)
              for i, (g, p) in enumerate(zip(labels, preds))]
    frames.append(FrameResult(7, START_NS + 700_000_000, None, [_pred(3, big)]))  # unlabelled
    m = score_predictions(frames, "raw", hold=3, frame_interval=0.1)
    # frame 1's largest face says 1 (wrong); frame 6 has no face (missed)
    assert m["scored_frames"] == 6 and m["labelled_frames"] == 7
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["end_to_end_accuracy"] == pytest.approx(5 / 7)
    assert m["detection_rate"] == pytest.approx(6 / 7)
    assert m["confusion"][0] == [2, 1, 0, 0, 0, 0, 0] and m["confusion"][1][1] == 3
    assert m["missed_per_class"][2] == 1
    assert m["per_class"]["angry"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["disgust"]["precision"] == pytest.approx(3 / 4)
    # run of frames 0..5 (6 frames last 0.6 s): two changes inside the angry segment
    assert m["changes"] == 2 and m["flicker_per_s"] == pytest.approx(2 / 0.6)
    assert m["transitions"] == 1 and m["mean_lag_frames"] == 0.0


def test_score_counts_and_nan_free_json(tmp_path: Path):
    box = Box(0, 0, 10, 10)
    frames = [FrameResult(0, START_NS, [LabelFace(3)], [_pred(3, box)], [_pred(3, box)]),
              FrameResult(1, START_NS + 10**8, [], [_pred(3, box)], [_pred(3, box)]),
              FrameResult(2, START_NS + 2 * 10**8, [LabelFace(3)], None, None)]
    run = EvalRun("b", "predictions", "/img", ts.LABEL_TOPIC, frames, smoother="ema")
    report = score(run)
    c = report["counts"]
    assert (c["frames"], c["labelled_frames"], c["labelled_no_face_frames"],
            c["frames_without_output"], c["false_detections_on_no_face_frames"]) == \
        (3, 2, 1, 1, 1)
    assert report["metrics"]["smoothed"]["labelled_frames_without_output"] == 1
    assert report["metrics"]["raw"]["flicker_per_s"] is None  # no run of 2 frames
    files = write_outputs(report, predictions_json(run), tmp_path / "out", plots=True)
    names = {p.name for p in files}
    assert {"report.json", "predictions.json", "summary.md", "confusion.png", "recall.png",
            "timeline.png"} <= names
    json.loads((tmp_path / "out" / "report.json").read_text())  # strict JSON (no NaN)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| smoothed |" in summary and "## Confusion matrix" in summary


# -- offline evaluation on real frames --------------------------------------------------------
def test_offline_evaluation_of_scene_bag(scene_bag: Path, tiny_model_path: Path,
                                         tmp_path: Path, capsys):
    out = tmp_path / "eval"
    assert eval_main([str(scene_bag), "--model-path", str(tiny_model_path),
                      "--set", "face_detector.tracking.min_hits=1", "--out", str(out),
                      "--quiet"]) == 0
    assert "evaluated 6 frames (5 labelled)" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    preds = json.loads((out / "predictions.json").read_text())
    assert report["mode"] == "offline" and report["smoother"] == "ema"
    assert report["counts"]["frames"] == 6 and report["counts"]["unlabelled_frames"] == 1
    assert set(report["latency_ms"]) == {"read_decode", "detect", "classify", "smooth", "total"}
    assert (out / "latency.png").is_file() and (out / "confusion.png").is_file()
    # every frame's face is found where the scene put it; accuracy agrees with predictions
    correct = scored = 0
    for frame, (t, _) in zip(preds["frames"], demo_frames(6, FPS)):
        assert len(frame["faces"]) == 1 and len(frame["raw_faces"]) == 1
        face = frame["faces"][0]
        assert Box(*face["box"]).iou(scene_boxes(1, t=t)[0]) > 0.4
        assert sum(face["probabilities"]) == pytest.approx(1.0, abs=1e-5)
        if frame["label"] is not None:
            scored += 1
            correct += face["label"] == frame["label"]
    assert report["metrics"]["smoothed"]["accuracy"] == pytest.approx(correct / scored)
    assert report["config"]["face_detector"]["tracking.min_hits"] == 1


def test_evaluate_cli_reports_errors(tmp_path: Path, capsys):
    assert eval_main([str(tmp_path / "missing_bag"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "emotion_eval_bag: error: bag not found" in err and "missing_bag" in err
    assert not (tmp_path / "o").exists()


def test_resolve_params_checks_names_and_values():
    params = resolve_params(overrides={"face_detector": {"tracking.min_hits": 1}})
    assert params["face_detector"]["tracking.min_hits"] == 1
    assert params["emotion_smoother"]["smoother"] in ("none", "ema", "hysteresis", "lstm")
    with pytest.raises(ValueError, match="'tracking.min_hitz' is not declared"):
        resolve_params(overrides={"face_detector": {"tracking.min_hitz": 1}})
    with pytest.raises(ValueError, match="tracking.min_hits"):
        resolve_params(overrides={"face_detector": {"tracking.min_hits": 0}})


def test_predictions_bag_must_share_stamps(scene_bag: Path, tmp_path: Path):
    out = tmp_path / "preds"
    with BagWriter(out) as writer:
        writer.add_topic("/emotion", ts.EMOTION_ARRAY_TYPE)
        writer.write_message("/emotion", 1, ts.make_label(1, "c", []))
    with pytest.raises(BagError, match="none of the 6 image stamps"):
        evaluate_predictions(scene_bag, out)
    with pytest.raises(BagError, match="has no '/emotion'"):
        evaluate_predictions(scene_bag, scene_bag)


def test_launch_file_compiles():
    source = (REPO_ROOT / "launch" / "replay.launch.py").read_text()
    compile(source, "replay.launch.py", "exec")
    assert (PACKAGE_DIR / "launch" / "replay.launch.py").is_file()
    assert "graph_spec(" in source and "emotion_record_bag" in source
