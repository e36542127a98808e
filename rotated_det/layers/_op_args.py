"""Argument checks shared by the Python fronts of the compiled ops.

Every function here compiles with ``torch.jit.script`` (so that ``nms_rotated`` and friends do,
as Detectron2's do): no ``!r`` conversions in f-strings, checks that only make sense on untyped
Python values sit under ``if not torch.jit.is_scripting()``.
"""

import torch


def is_float_dtype(dtype: torch.dtype) -> bool:
    """Whether the Python fronts accept ``dtype`` for coordinates and scores. The compiled kernels
    take float32 and float64 only; float16/bfloat16 (autocast) are widened before the call."""
    return dtype in [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def dtype_str(dtype: torch.dtype) -> str:
    """``str(dtype)``, e.g. ``"torch.bfloat16"``, also when scripted (where dtypes are numbers)."""
    if not torch.jit.is_scripting():
        return str(dtype)
    known = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool]
    names = ["float16", "bfloat16", "float32", "float64", "bool"]
    known += [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]
    names += ["uint8", "int8", "int16", "int32", "int64"]
    for d, name in zip(known, names):
        if dtype == d:
            return "torch." + name
    return f"dtype {dtype}"


def shape_str(t: torch.Tensor) -> str:
    """``str(tuple(t.shape))``, e.g. ``"(3, 4)"`` or ``"(3,)"``."""
    dims = [str(int(d)) for d in t.shape]
    if len(dims) == 1:
        return "(" + dims[0] + ",)"
    return "(" + ", ".join(dims) + ")"


def geometry_dtype(a: torch.dtype, b: torch.dtype) -> torch.dtype:
    """The dtype the kernels compute in for inputs of dtypes ``a`` and ``b``: float64 when
    either is float64, else float32. Widening is exact, so float16/bfloat16/float32 inputs give
    the float32 result of the same (rounded) values."""
    if a == torch.float64 or b == torch.float64:
        return torch.float64
    return torch.float32


def check_boxes(boxes: torch.Tensor, name: str) -> None:
    """Raises ValueError unless ``boxes`` is an [N, 5] floating-point tensor."""
    if not torch.jit.is_scripting():
        if not isinstance(boxes, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor of shape [N, 5], got {type(boxes)}")
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise ValueError(
            f"{name} must have shape [N, 5] (cx, cy, w, h, angle_deg), got {shape_str(boxes)}"
        )
    if not is_float_dtype(boxes.dtype):
        raise ValueError(
            f"{name} must be float16, bfloat16, float32 or float64, got {dtype_str(boxes.dtype)}"
        )
