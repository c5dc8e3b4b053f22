"""scripts/bootstrap.sh: a ROS 2 underlay whose Python is itself a virtual environment.

ROS 2 built from source into a venv, sourced, then the README's "With ROS 2" path: our venv,
made from that Python with --system-site-packages, did not see the underlay venv's packages,
and rclpy failed with "No module named 'ament_package'". bootstrap's helpers (sourced alone,
EP_BOOTSTRAP_LIB=1) detect the underlay venv and link its site-packages into ours. Everything
here is fake and local: no ROS 2, no network.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

BOOTSTRAP = REPO_ROOT / "scripts" / "bootstrap.sh"


def _helpers(call: str) -> subprocess.CompletedProcess:
    script = f'EP_BOOTSTRAP_LIB=1 source "{BOOTSTRAP}"; {call}'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)


def _venv(path: Path, python: str, *extra: str) -> Path:
    subprocess.run([python, "-m", "venv", "--without-pip", *extra, str(path)], check=True,
                   timeout=120)
    return path / "bin" / "python"


def _purelib(python: Path) -> Path:
    return Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig."
                                "get_paths()['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())


def _base_python() -> str:
    """A plain interpreter (not a venv): the one this test's venv was made from."""
    for name in ("python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        candidate = Path(sys.base_prefix) / "bin" / name
        if candidate.is_file():
            return str(candidate)
    pytest.skip(f"no interpreter found in {sys.base_prefix}/bin")


@pytest.fixture
def underlay(tmp_path: Path) -> tuple[Path, Path]:
    """A fake ROS 2 underlay: a venv holding ament_package, rclpy in a colcon install beside."""
    py = _venv(tmp_path / "ros_venv", _base_python())
    (_purelib(py) / "ament_package").mkdir()
    (_purelib(py) / "ament_package" / "__init__.py").write_text("")
    install = tmp_path / "ros_install" / "site-packages"
    (install / "rclpy").mkdir(parents=True)
    (install / "rclpy" / "__init__.py").write_text("import ament_package  # noqa: F401\n")
    return py, install


def test_venv_site_packages_tells_a_venv_from_a_plain_interpreter(underlay):
    py, _ = underlay
    res = _helpers(f'venv_site_packages "{py}"')
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip().splitlines()[0]) == _purelib(py)
    res = _helpers(f'venv_site_packages "{_base_python()}"')
    assert res.returncode == 1 and not res.stdout.strip()


def test_link_underlay_venv_makes_rclpy_importable(underlay, tmp_path):
    py, install = underlay
    ours = _venv(tmp_path / "ours", str(py), "--system-site-packages")  # as bootstrap does
    env = dict(os.environ, PYTHONPATH=str(install))  # what the underlay's setup.bash sets
    before = subprocess.run([str(ours), "-c", "import rclpy"], capture_output=True, text=True,
                            env=env)
    assert before.returncode != 0 and "No module named 'ament_package'" in before.stderr
    for _ in range(2):  # idempotent: the second run changes nothing and says nothing
        res = _helpers(f'link_underlay_venv "{tmp_path / "ours"}" "{py}"')
        assert res.returncode == 0, res.stderr
    pth = _purelib(ours) / "ep_ros_underlay.pth"
    assert pth.read_text() == f"import site; site.addsitedir({str(_purelib(py))!r})\n"
    after = subprocess.run([str(ours), "-c", "import rclpy, sys; print(sys.path)"],
                           capture_output=True, text=True, env=env)
    assert after.returncode == 0, after.stderr
    path = ast.literal_eval(after.stdout)  # our own site-packages before the underlay's
    assert path.index(str(_purelib(ours))) < path.index(str(_purelib(py)))


def test_link_underlay_venv_leaves_a_plain_underlay_alone(tmp_path):
    base = _base_python()
    ours = _venv(tmp_path / "ours", base, "--system-site-packages")
    pth = _purelib(ours) / "ep_ros_underlay.pth"
    pth.write_text("/stale\n")  # left by an earlier underlay
    res = _helpers(f'link_underlay_venv "{tmp_path / "ours"}" "{base}"')
    assert res.returncode == 0, res.stderr
    assert not pth.exists()
