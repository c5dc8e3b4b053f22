"""Find model files by lookup, never by a hard-coded absolute path.

Order: an explicit path given by the user (the ``model_path`` parameter), else the ``models/``
folder of the installed ``emotion_perception`` share directory (ament index), else the
``models/`` folder of the source tree this module lives in (so tests and tools work from a
checkout that was never built).
"""

from __future__ import annotations

import logging
from pathlib import Path

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

    ``explicit`` (the user's ``model_path`` parameter) must name an existing file; otherwise the
    share directory and the source tree are searched for ``file_name``. Raises
    FileNotFoundError naming ``parameter`` (the user-facing name of ``explicit``, by default
    ``model_path``) and every place searched.
    """
    explicit = (explicit or "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if path.is_file():
            return path.resolve()
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
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
