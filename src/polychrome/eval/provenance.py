"""Where results come from: the machine a run used (CPU, cores, memory, accelerator, library versions, read
from the OS, never guessed) and the exact settings of an evaluation."""

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
            "pillow": PIL.__version__,
            **_optional_versions(("scikit-image",)),  # the eval extra (not in a base install)
        },
    }


def _optional_versions(distributions: tuple[str, ...]) -> dict[str, str]:
    """The installed version of each distribution that is installed (read from its metadata, not imported)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in distributions:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def describe(info: dict) -> str:
    """One line for humans: ``CPU, bf16 units (N of M cores usable, torch threads T), X GiB RAM, GPU``."""
    bf16 = f", {'+'.join(info['cpu_bf16'])}" if info.get("cpu_bf16") else ", no bf16 units"
    mem = f", {info['memory_gib']} GiB RAM" if info.get("memory_gib") else ""
    return (
        f"{info['cpu']}{bf16} ({info['usable_cores']} of {info['logical_cores']} cores usable, "
        f"torch threads {info['torch_threads']}){mem}, {'GPU ' + info['gpu'] if info.get('gpu') else 'no GPU'}"
    )


def evaluation_settings(size: int) -> dict:
    """How an evaluation at working size ``size`` colourises and scores, with the library versions (the
    ``settings`` of its JSON)."""
    import skimage
    import torch

    import polychrome
    from polychrome.eval import metrics

    return {
        "pipeline": "polychrome.Colorizer at full resolution (model sees L only, at the working size)",
        "grey_baseline": "polychrome.pipeline.gray_array (ab = 0, L kept)",
        "working_size": size,
        "quantisation": "uint8 = floor(clip(x, 0, 1) * 255 + 0.5), as a saved 8-bit file",
        "psnr": {
            "function": "skimage.metrics.peak_signal_noise_ratio",
            "space": "RGB 0-255",
            "data_range": 255,
            "max_db": metrics.PSNR_MAX_DB,
        },
        "ssim": {
            "function": "skimage.metrics.structural_similarity",
            "space": "RGB 0-255",
            "channel_axis": 2,
            "data_range": 255,
            "win_size": metrics.SSIM_WIN_SIZE,
            "gaussian_weights": False,
            "note": "win_size shrinks to the largest odd size that fits photos under 7 px",
        },
        "colorfulness": (
            "Hasler & Suesstrunk 2003 on RGB 0-255 (prediction, grey and original alike): rg = R - G, "
            "yb = (R + G) / 2 - B, sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2), population std"
        ),
        "ciede2000": "mean of skimage.color.deltaE_ciede2000 (kL=kC=kH=1) on skimage.color.rgb2lab (D65, 2 deg)",
        "versions": {
            "polychrome": polychrome.__version__,
            "scikit-image": skimage.__version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
    }
