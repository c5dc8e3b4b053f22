"""Find model files by lookup, never by a hard-coded absolute path.

Order: an explicit path given by the user (the ``model_path`` parameter), else the ``models/``
folder of the installed ``emotion_perception`` share directory (ament index), else the
``models/`` folder of the source tree this module lives in (so tests and tools work from a
checkout that was never built).
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from pathlib import Path
from typing import Any

_LOG = logging.getLogger(__name__)

PACKAGE = "emotion_perception"
DEFAULT_KERAS_MODEL = "emotion_net.keras"
DEFAULT_TFLITE_MODEL = "emotion_net_int8.tflite"
PARAMETER = "model_path"


def _share_models_dir() -> tuple[Path | None, str]:
    """Return (models dir of the installed share directory or None, description)."""
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        return None, "ament index (ament_index_python not importable)"
    try:
        share = get_package_share_directory(PACKAGE)
    except Exception as exc:  # PackageNotFoundError, or a broken AMENT_PREFIX_PATH
        return None, f"ament index ({exc})"
    return Path(share) / "models", ""


def source_models_dir() -> Path:
    """Return the ``models/`` folder of the source tree (src/emotion_perception/models)."""
    return Path(__file__).resolve().parents[2] / "models"


def model_search_dirs() -> list[Path]:
    """Return the folders searched for a model file when no explicit path is given."""
    dirs: list[Path] = []
    share, _ = _share_models_dir()
    if share is not None:
        dirs.append(share)
    src = source_models_dir()
    if src not in dirs:
        dirs.append(src)
    return dirs


def find_model(file_name: str, explicit: str = "", parameter: str = PARAMETER) -> Path:
    """Return the path of the model file ``file_name``, or of ``explicit`` if that is given.

    ``explicit`` (the user's ``model_path`` parameter) must name an existing file, or be the bare
    name of a shipped model file (no folder part; found in the folders searched for the
    default, after the current directory); otherwise the share directory and the source tree
    are searched for ``file_name``. Raises
    FileNotFoundError naming ``parameter`` (the user-facing name of ``explicit``, by default
    ``model_path``) and every place searched.
    """
    explicit = (explicit or "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if path.is_file():
            return path.resolve()
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        if not path.is_dir() and path.name == explicit:
            # a bare file name (a preset's ``model_path: emotion_net_ensemble_int8.tflite``):
            # a shipped model, looked up like the default one
            for folder in model_search_dirs():
                if (folder / explicit).is_file():
                    return folder / explicit
            what += (" here, nor in the shipped models ("
                     + ", ".join(str(d) for d in model_search_dirs()) + ")")
        raise FileNotFoundError(f"{parameter} {explicit!r} {what}; set the parameter "
                                f"{parameter} to an existing model file")
    if not file_name:
        raise ValueError("file_name must be a non-empty model file name")
    searched: list[str] = []
    share, why_not = _share_models_dir()
    if share is None:
        searched.append(why_not)
    candidates = model_search_dirs()
    for folder in candidates:
        path = folder / file_name
        if path.is_file():
            _LOG.debug("found model %s", path)
            return path
        searched.append(str(path))
    raise FileNotFoundError(
        f"model file {file_name!r} not found; searched: {'; '.join(searched)}. Set the "
        f"parameter {parameter} to a model file, or train and export one into "
        f"src/{PACKAGE}/models/ (see the README)")


#: what a Keras 3 ``.keras`` archive holds (``model.weights.h5`` only for models with weights)
KERAS_ARCHIVE_MEMBERS = ("config.json", "metadata.json")


def check_keras_archive(path: str | Path, parameter: str = PARAMETER) -> None:
    """Raise ValueError naming ``path`` and ``parameter`` if the ``.keras`` file is unusable.

    A ``.keras`` file is a zip archive. Keras itself reports a truncated, empty or non-zip file
    as "File not found", which sends the user looking for a path that exists; this check says
    what is wrong instead: empty, cut short (a zip whose central directory at the end is
    missing), not a zip at all, a member failing its CRC, or members missing. Files with
    another suffix (legacy ``.h5``) are not checked here.
    """
    path = Path(path)
    if path.suffix.lower() != ".keras":
        return
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise ValueError(f"{parameter} {str(path)!r}: cannot read the file: {exc}") from exc
    where = f"{parameter} {str(path)!r}"
    if size == 0:
        raise ValueError(f"{where} is empty (0 bytes): the file was truncated or never "
                         "written completely; export or copy the model again")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = set(archive.namelist())
    except zipfile.BadZipFile as exc:
        if head == b"PK\x03\x04":
            raise ValueError(f"{where} is truncated or corrupt ({size} bytes): it starts like "
                             "the zip archive a .keras file is, but its end (the zip central "
                             "directory) is missing or damaged; export or copy the model "
                             "again") from exc
        kind = "an HDF5 file (save it as .h5, or re-save it as .keras)" \
            if head == b"\x89HDF" else f"not a zip archive (first bytes {head!r})"
        raise ValueError(f"{where} is {kind}; a .keras model file is a zip archive") from exc
    except (OSError, EOFError, RuntimeError, ValueError, zlib.error) as exc:  # cut short
        raise ValueError(f"{where} is truncated or corrupt ({size} bytes): "
                         f"{type(exc).__name__}: {exc}") from exc
    if bad is not None:
        raise ValueError(f"{where} is corrupt: archive member {bad!r} fails its CRC check; "
                         "export or copy the model again")
    missing = [m for m in KERAS_ARCHIVE_MEMBERS if m not in names]
    if missing:
        raise ValueError(f"{where} is not a complete Keras model archive: it lacks "
                         f"{', '.join(missing)}")


def load_keras_model(path: str | Path, parameter: str = PARAMETER, what: str = "Keras model"
                     ) -> Any:
    """Load a Keras model file (``compile=False``, ``safe_mode``), naming file and parameter.

    The archive is checked first (:func:`check_keras_archive`), so a truncated or corrupt file
    is reported as such rather than as Keras's misleading "File not found". Raises ValueError;
    callers wrap it in their own error type.
    """
    import keras

    check_keras_archive(path, parameter)
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # BadZipFile, ValueError, OSError, ... on a broken file
        raise ValueError(f"cannot load {what} {str(path)!r} (parameter {parameter}): "
                         f"{type(exc).__name__}: {exc}") from exc
