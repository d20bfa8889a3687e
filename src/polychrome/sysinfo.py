"""What a benchmark ran on: CPU, cores, memory, accelerator, library versions. Read from the OS, never guessed."""

from __future__ import annotations

import os
import platform
import sys


def _cpuinfo() -> dict[str, str]:
    """The first processor's entries of /proc/cpuinfo (empty off Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            text = f.read().split("\n\n", 1)[0]
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def system_info() -> dict:
    """Hardware and software facts worth printing beside a timing or a score.

    ``cpu_bf16`` lists the CPU features that make bf16 autocast fast (AVX-512 BF16, AMX); without them
    PyTorch emulates bf16 and it can be slower than fp32.
    """
    import numpy
    import PIL
    import skimage
    import torch

    import polychrome

    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_bf16": sorted(flags & {"avx512_bf16", "amx_bf16"}),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "memory_gib": _memory_gib(),
        "gpu": gpu,
        "platform": platform.platform(),
        "versions": {
            "polychrome": polychrome.__version__,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "scikit-image": skimage.__version__,
            "pillow": PIL.__version__,
        },
    }


def describe(info: dict) -> str:
    """One line for humans: ``CPU, bf16 units (N of M cores usable, torch threads T), X GiB RAM, GPU``."""
    bf16 = f", {'+'.join(info['cpu_bf16'])}" if info.get("cpu_bf16") else ", no bf16 units"
    mem = f", {info['memory_gib']} GiB RAM" if info.get("memory_gib") else ""
    return (
        f"{info['cpu']}{bf16} ({info['usable_cores']} of {info['logical_cores']} cores usable, "
        f"torch threads {info['torch_threads']}){mem}, {'GPU ' + info['gpu'] if info.get('gpu') else 'no GPU'}"
    )
