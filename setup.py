"""Build and install rotated_det.

The compiled operators in ``csrc/`` become the shared library ``rotated_det/_C*.so``. It holds
only ``TORCH_LIBRARY(rotated_det, ...)`` registrations and no Python bindings (it is built with
``py_limited_api`` so it does not link libtorch_python), which is what lets the same file be
loaded by ``torch.ops.load_library`` from Python and by ``torch::jit`` programs in C++.

CPU kernels are always built. CUDA kernels are added when ``FORCE_CUDA=1`` or a GPU is visible.
"""

import glob
import os

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _want_cuda() -> bool:
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.cuda.is_available() and torch.utils.cpp_extension.CUDA_HOME is not None


def build_extensions():
    csrc = os.path.join(ROOT, "csrc")
    sources = sorted(glob.glob(os.path.join(csrc, "**", "*.cpp"), recursive=True))
    cuda_sources = sorted(glob.glob(os.path.join(csrc, "**", "*.cu"), recursive=True))
    if not sources:
        return []
    extra_compile_args = {"cxx": ["-O3", "-fopenmp"]}
    # cpp_extension itself adds -DPy_LIMITED_API for py_limited_api extensions.
    define_macros = []
    extension = CppExtension
    if _want_cuda() and cuda_sources:
        extension = CUDAExtension
        sources = sources + cuda_sources
        define_macros.append(("WITH_CUDA", None))
        extra_compile_args["nvcc"] = [
            "-O3",
            "--expt-relaxed-constexpr",
            "-D__CUDA_NO_HALF_OPERATORS__",
            "-D__CUDA_NO_HALF_CONVERSIONS__",
            "-D__CUDA_NO_HALF2_OPERATORS__",
        ]
        # A compile-only build on a machine without a GPU needs explicit target architectures.
        if "TORCH_CUDA_ARCH_LIST" not in os.environ:
            os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0"
    return [
        extension(
            "rotated_det._C",
            sources=[os.path.relpath(s, ROOT) for s in sources],
            include_dirs=[csrc],
            define_macros=define_macros,
            extra_compile_args=extra_compile_args,
            extra_link_args=["-fopenmp"],
            py_limited_api=True,
        )
    ]


setup(
    name="rotated_det",
    version="0.1.0",
    description="Rotated (oriented) object detection for PyTorch in the style of Detectron2",
    license_expression="Apache-2.0",
    license_files=["LICENSE"],
    packages=find_packages(exclude=("tests", "tests.*", "configs", "tools", "dev", "projects")),
    python_requires=">=3.10",
    install_requires=[
        "fvcore",
        "iopath",
        "omegaconf>=2.1",
        "hydra-core>=1.1",
        "pycocotools",
        "numpy",
        "opencv-python-headless",
        "tensorboard",
        "matplotlib",
        "tqdm",
        "PyYAML",
        "timm>=1.0",  # backbones beyond ResNet (TimmBackbone); imported only when one is built
        "safetensors",  # .safetensors weight files (timm / Hugging Face checkpoints)
    ],
    extras_require={
        # projects/ReDet: C8-equivariant layers (the library ReDet itself uses; escnn needs a
        # Fortran compiler for py3nj). pip install -e ".[redet]"
        "redet": ["e2cnn>=0.2.3"],
    },
    ext_modules=build_extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=True)},
)
