"""Code-quality gates: flake8 (99 columns), pydocstyle, package.xml declares what we import."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import REPO_ROOT

SRC = REPO_ROOT / "src"
PY_PACKAGES = [SRC / "emotion_perception", SRC / "emotion_training"]
PY_FILES = [p for pkg in PY_PACKAGES for p in pkg.rglob("*.py") if "build" not in p.parts]
PY_FILES += sorted((REPO_ROOT / "launch").glob("*.py"))

# ROS packages as Python modules -> the package.xml name that provides them
ROS_MODULES = {"rclpy": "rclpy", "std_msgs": "std_msgs", "sensor_msgs": "sensor_msgs",
               "diagnostic_msgs": "diagnostic_msgs", "lifecycle_msgs": "lifecycle_msgs",
               "rcl_interfaces": "rcl_interfaces", "builtin_interfaces": "builtin_interfaces",
               "emotion_msgs": "emotion_msgs", "ament_index_python": "ament_index_python",
               "launch": "launch", "launch_ros": "launch_ros", "emotion_perception":
               "emotion_perception", "emotion_training": "emotion_training",
               "cv_bridge": "cv_bridge", "hri_msgs": "hri_msgs"}
# ROS packages imported only inside try/except, with a fallback when absent
OPTIONAL_ROS = {"cv_bridge", "hri_msgs"}
# Third-party Python modules -> their rosdep key (declared in package.xml) ...
ROSDEP_KEYS = {"numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml",
               "tqdm": "python3-tqdm", "matplotlib": "python3-matplotlib",
               "psutil": "python3-psutil", "skimage": "python3-skimage",
               "scipy": "python3-scipy"}
# ... or, where rosdep has no key, the pip requirement that must be in requirements/python.txt
PIP_ONLY = {"tensorflow": "tensorflow", "keras": "keras", "ai_edge_litert": "ai-edge-litert",
            "rosbags": "rosbags", "mediapipe": "mediapipe"}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT)


def test_flake8():
    pytest.importorskip("flake8")
    res = _run(["flake8", "--max-line-length=99", "--extend-ignore=E203,W503,W504",
                *map(str, PY_FILES)])
    assert res.returncode == 0, res.stdout + res.stderr


def test_docstrings():
    pytest.importorskip("pydocstyle")
    files = [str(p) for p in PY_FILES if "test" not in p.parts]
    res = _run(["pydocstyle", "--convention=pep257", "--add-ignore=D105,D107,D203,D213",
                *files])
    assert res.returncode == 0, res.stdout + res.stderr


def _imports(files: list[Path]) -> set[str]:
    found: set[str] = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def _declared(package_xml: Path) -> set[str]:
    root = ET.parse(package_xml).getroot()
    tags = ("depend", "exec_depend", "build_depend", "test_depend", "buildtool_depend")
    return {el.text.strip() for tag in tags for el in root.iter(tag)}


def _runtime_files(pkg: Path) -> list[Path]:
    files = [p for p in pkg.rglob("*.py")
             if "test" not in p.parts and "build" not in p.parts and p.name != "setup.py"]
    if pkg.name == "emotion_perception":
        files += sorted((REPO_ROOT / "launch").glob("*.py"))
    return files


@pytest.mark.parametrize("pkg", PY_PACKAGES, ids=lambda p: p.name)
def test_package_xml_declares_ros_imports(pkg: Path):
    used = {ROS_MODULES[m] for m in _imports(_runtime_files(pkg)) if m in ROS_MODULES}
    missing = used - {pkg.name} - OPTIONAL_ROS - _declared(pkg / "package.xml")
    assert not missing, f"{pkg.name}/package.xml lacks <depend> for {sorted(missing)}"


@pytest.mark.parametrize("pkg", PY_PACKAGES, ids=lambda p: p.name)
def test_every_third_party_import_is_declared(pkg: Path):
    """Derived from the imports: each one has a rosdep key in package.xml or a pip line."""
    third_party = {m for m in _imports(_runtime_files(pkg))
                   if m not in sys.stdlib_module_names and m not in ROS_MODULES}
    unknown = third_party - set(ROSDEP_KEYS) - set(PIP_ONLY)
    assert not unknown, (f"{pkg.name} imports {sorted(unknown)}: add each to ROSDEP_KEYS (and "
                         "package.xml) or PIP_ONLY (and requirements/python.txt)")
    declared = _declared(pkg / "package.xml")
    missing = {ROSDEP_KEYS[m] for m in third_party & set(ROSDEP_KEYS)} - declared
    assert not missing, f"{pkg.name}/package.xml lacks <exec_depend> for {sorted(missing)}"
    req = (REPO_ROOT / "requirements" / "python.txt").read_text().lower()
    listed = {line.split("#")[0].strip().split("=")[0].split("<")[0].split(">")[0].strip()
              for line in req.splitlines()}
    unlisted = {PIP_ONLY[m] for m in third_party & set(PIP_ONLY)} - listed
    assert not unlisted, f"requirements/python.txt lacks {sorted(unlisted)} ({pkg.name} imports)"


def test_the_import_scan_sees_what_it_must():
    """The scan itself: a file importing an undeclared module is caught."""
    imports = _imports([Path(__file__)])
    assert {"ast", "pytest", "subprocess"} <= imports


@pytest.mark.parametrize("xml", sorted(SRC.glob("*/package.xml")), ids=lambda p: p.parent.name)
def test_package_xml_is_well_formed(xml: Path):
    root = ET.parse(xml).getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == xml.parent.name
    for m in root.iter("maintainer"):
        email = m.get("email", "")
        assert "@" in email and "." in email.split("@")[-1], f"invalid e-mail {email!r}"
    if shutil.which("xmllint"):
        res = subprocess.run(["xmllint", "--noout", str(xml)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


def _slug(heading: str) -> str:
    """Return the anchor GitHub gives a Markdown heading (lower case, punctuation dropped)."""
    import re
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", ["README.md", "docker/README.md"])
def test_every_link_to_a_section_lands_on_a_heading(doc: str):
    import re
    text = (REPO_ROOT / doc).read_text()
    anchors = {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert _slug("Robustness: what a camera path does to the shipped model") == \
        "robustness-what-a-camera-path-does-to-the-shipped-model"
    assert links <= anchors, f"{doc}: links to no heading: {sorted(links - anchors)}"
    if doc == "README.md":
        assert {"two-commands", "the-model", "performance"} <= links  # the contents line
