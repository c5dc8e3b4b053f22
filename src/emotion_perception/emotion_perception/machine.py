"""What machine a benchmark ran on: CPU model, SIMD flags, cores, load average.

Every figure the project publishes names the CPU and the command that printed it; the
benchmarks (``bench`` and its ``--multi``, ``--processes`` and ``--peer`` modes) print this
line first and store the dictionary in their JSON.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

#: the SIMD extensions that decide inference speed on x86 (XNNPACK picks kernels by them)
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni")


def cpu_description() -> dict[str, Any]:
    """Return the CPU model, which SIMD flags it has (of ``SIMD_FLAGS``) and the core count.

    From ``lscpu`` where it runs, else from /proc/cpuinfo.
    """
    model, flags = "", set()
    if shutil.which("lscpu"):
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                                 env={**os.environ, "LC_ALL": "C"}).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name" and not model:
                model = value.strip()
            elif key.strip() == "Flags":
                flags = set(value.split())
    if not model or not flags:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
        except OSError:
            pass
    return {"model": model or "unknown CPU", "cores": os.cpu_count(),
            "simd": [f for f in SIMD_FLAGS if f in flags],
            "no_simd": [f for f in SIMD_FLAGS if f not in flags]}


def machine() -> dict[str, Any]:
    """Return :func:`cpu_description` plus the Python version and the load average now."""
    out = cpu_description()
    out["python"] = platform.python_version()
    try:
        out["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        out["load_average"] = []
    return out


def machine_line(info: dict[str, Any] | None = None) -> str:
    """Return one line naming the CPU, its cores, SIMD flags (present / absent) and load."""
    info = info or machine()
    load = info.get("load_average") or []
    return (f"CPU: {info['model']}, {info['cores']} cores; SIMD: {' '.join(info['simd'])}"
            f"{'; no ' + ' '.join(info['no_simd']) if info['no_simd'] else ''}"
            f"{'; load average ' + ' '.join(f'{v:.2f}' for v in load) if load else ''}")
