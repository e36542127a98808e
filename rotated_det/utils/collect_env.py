"""A text report of the environment (versions, devices, build), logged at start-up."""

import glob
import importlib
import os
import platform
import sys

import numpy as np
import torch

__all__ = ["collect_env_info"]


def _version(name: str) -> str:
    try:
        module = importlib.import_module(name)
    except ImportError:
        return "not found"
    except Exception as e:  # noqa: BLE001 - a broken optional package must not stop the report
        return f"import error: {e}"
    return getattr(module, "__version__", "unknown version")


def _compiled_ops_info() -> str:
    # Located by file name rather than by importing rotated_det.layers (a peer package).
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = sorted(glob.glob(os.path.join(package_dir, "_C*.so")))
    if not found:
        return f"not built (no _C*.so in {package_dir})"
    try:
        torch.ops.load_library(found[0])
        has_cuda = torch._C._dispatch_has_kernel_for_dispatch_key(
            "rotated_det::nms_rotated", "CUDA"
        )
    except Exception as e:  # noqa: BLE001 - report, never fail
        return f"{found[0]} fails to load ({type(e).__name__}: {e})"
    return f"{found[0]} (CUDA kernels: {'yes' if has_cuda else 'no'})"


def collect_env_info() -> str:
    """Return a two-column table: Python, platform, library versions, devices, ops build."""
    rows = [
        ("sys.platform", sys.platform),
        ("Python", sys.version.replace("\n", "")),
        ("platform", platform.platform()),
        ("numpy", np.__version__),
        ("rotated_det", os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        ("rotated_det._C", _compiled_ops_info()),
        ("PyTorch", f"{torch.__version__} @{os.path.dirname(torch.__file__)}"),
        ("PyTorch debug build", str(torch.version.debug)),
        ("torch CUDA (build)", str(torch.version.cuda)),
        ("CUDA available", str(torch.cuda.is_available())),
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            cap = ".".join(str(x) for x in torch.cuda.get_device_capability(i))
            rows.append((f"GPU {i}", f"{torch.cuda.get_device_name(i)} (arch {cap})"))
    rows.append(("CPU threads (torch)", str(torch.get_num_threads())))
    rows.append(("CPU count (os)", str(os.cpu_count())))
    for name in ("torchvision", "fvcore", "iopath", "omegaconf", "hydra", "cv2", "shapely"):
        rows.append((name, _version(name)))
    width = max(len(k) for k, _ in rows)
    lines = ["-" * (width + 40)]
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines.append("-" * (width + 40))
    return "\n".join(lines)


if __name__ == "__main__":
    print(collect_env_info())
