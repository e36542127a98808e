"""The C++ runner of tools/deploy for tests: built once per checkout into build/deploy_tests
(CMake rebuilds it only when its source changes: 20-40 s of CPU the first time) and run in
subprocesses whose printed detections are parsed back into tensors."""

import os
import shutil
import subprocess

import pytest
import torch

from rotated_det.layers.ops_library import library_path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIR = os.path.join(REPO, "build", "deploy_tests")


def build_runner(build_dir: str = BUILD_DIR) -> str:
    """Configure and build tools/deploy into ``build_dir`` (default build/deploy_tests); returns
    the executable's path."""
    if shutil.which("cmake") is None:
        pytest.fail("cmake is not installed: the C++ runner cannot be built")
    torch_dir = os.path.dirname(torch.__file__)
    nvrtc = os.path.join(os.path.dirname(torch_dir), "nvidia", "cu13", "lib", "libnvrtc.so.13")
    cmd = [
        "cmake",
        "-S",
        os.path.join(REPO, "tools", "deploy"),
        "-B",
        build_dir,
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
        "-DCUDA_TOOLKIT_ROOT_DIR=/usr/local/cuda",
        f"-DROTATED_DET_OPS_LIBRARY={library_path()}",
    ]
    if os.path.exists(nvrtc):
        cmd.append(f"-DCUDA_nvrtc_LIBRARY={nvrtc}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"cmake configure failed:\n{proc.stdout[-3000:]}\n{proc.stderr}"
    proc = subprocess.run(["cmake", "--build", build_dir, "-j2"], capture_output=True, text=True)
    assert proc.returncode == 0, f"cmake build failed:\n{proc.stdout[-3000:]}\n{proc.stderr}"
    exe = os.path.join(build_dir, "torchscript_rotated_det")
    assert os.path.exists(exe)
    return exe


def run_runner(exe: str, model, images, *options) -> subprocess.CompletedProcess:
    """Run the runner; fails the test with its stderr when it exits with an error."""
    proc = subprocess.run(
        [exe, str(model), *map(str, images), *map(str, options)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def parse_detections(stdout: str, images) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The runner's output -> per image (boxes float64 [N, 5], scores float64 [N], classes [N])."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    starts = [i for i, ln in enumerate(lines) if ln.startswith("image ")]
    assert [lines[i][len("image ") :] for i in starts] == [str(p) for p in images]
    results = []
    for i in starts:
        assert lines[i + 1].startswith("detections "), lines[i + 1]
        n = int(lines[i + 1].split()[1])
        rows = [ln.split() for ln in lines[i + 2 : i + 2 + n]]
        assert len(rows) == n and [int(r[0]) for r in rows] == list(range(n))
        classes = torch.tensor([int(r[1]) for r in rows], dtype=torch.int64)
        scores = torch.tensor([float(r[2]) for r in rows], dtype=torch.float64)
        boxes = torch.tensor([[float(v) for v in r[3:8]] for r in rows], dtype=torch.float64)
        results.append((boxes.reshape(-1, 5), scores, classes))
    return results
