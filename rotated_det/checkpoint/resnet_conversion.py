"""Convert ImageNet ResNet checkpoints to a model's parameter names (used by DetectionCheckpointer).

:func:`convert_checkpoint` recognises the layout of a state dict from its key names
(:func:`detect_format`) and renames its ResNet tensors to where the model's ResNet sits (the module
with ``.stem`` and ``.res2``, e.g. ``backbone.bottom_up.`` under an FPN):

- ``"torchvision"``: ``torchvision.models.resnet*().state_dict()``; timm's ResNets use the same
  names, and OpenMMLab checkpoints put them under ``backbone.``. Documented conversion:

  ======================================  ============================================
  file                                    model (under the ResNet's prefix)
  ======================================  ============================================
  ``conv1.weight``                        ``stem.conv1.weight``
  ``bn1.{weight,bias,running_*}``         ``stem.conv1.norm.{...}``
  ``layer{i}.{j}.conv{k}.weight``         ``res{i+1}.{j}.conv{k}.weight``
  ``layer{i}.{j}.bn{k}.{...}``            ``res{i+1}.{j}.conv{k}.norm.{...}``
  ``layer{i}.{j}.downsample.0.weight``    ``res{i+1}.{j}.shortcut.weight``
  ``layer{i}.{j}.downsample.1.{...}``     ``res{i+1}.{j}.shortcut.norm.{...}``
  ``fc.*``, ``*.num_batches_tracked``     ignored
  ======================================  ============================================

  Batch-norm weight, bias, running mean and running variance are copied as they are into the
  four buffers of FrozenBatchNorm2d (``y = (x - mean) / sqrt(var + eps) * weight + bias``, eps
  1e-5 in both). These models stride in the 3x3 conv (build the ResNet with
  ``stride_in_1x1=False``) and expect RGB input normalised with ImageNet mean and std.
- ``"msra"``: Caffe2 / Detectron ``.pkl`` files (Detectron2's ``ImageNetPretrained/MSRA/R-50.pkl``),
  a dict (optionally under ``"blobs"``) of numpy arrays. Documented conversion:

  ======================================  ============================================
  file                                    model (under the ResNet's prefix)
  ======================================  ============================================
  ``conv1_w``                             ``stem.conv1.weight``
  ``res_conv1_bn_s``, ``res_conv1_bn_b``  ``stem.conv1.norm.weight``, ``...norm.bias``
  ``res{s}_{j}_branch2{a,b,c}_w``         ``res{s}.{j}.conv{1,2,3}.weight``
  ``res{s}_{j}_branch1_w``                ``res{s}.{j}.shortcut.weight``
  ``<conv>_bn_s``, ``<conv>_bn_b``        ``<conv>.norm.weight``, ``<conv>.norm.bias``
  (none)                                  ``*.norm.running_mean`` = 0,
                                          ``*.norm.running_var`` = 1 - eps
  ``fc1000_*``, ``*_momentum``, ``pred_*``  ignored
  ======================================  ============================================

  Their batch norms are already folded into scale and bias, hence the identity statistics:
  FrozenBatchNorm2d then computes exactly ``x * scale + bias``. These models stride in the 1x1
  conv (``stride_in_1x1=True``) and expect BGR input minus the ImageNet mean, std 1.
- ``"detectron2"``: this package's (and Detectron2's) names, ``stem.conv1.weight``,
  ``res2.0.conv1.norm.weight``, ...: ResNet keys are moved from the file's prefix (e.g. none in a
  backbone-only file) to the model's; a full checkpoint of the same model is loaded unchanged.
- ``"as is"``: anything else, loaded by name.

For "torchvision" and "msra" files loaded into a detector that states its input normalisation
(``pixel_mean``, ``pixel_std``, ``input_format``), the first convolution is adapted to it when the
means agree (they do for the standard configs): input channels are reordered (RGB <-> BGR) and each
is scaled by ``model std / file std``, which gives exactly the features the file's network computes
on its own input normalisation. Other differences are reported, not guessed.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "ConvertedCheckpoint",
    "InputNormalization",
    "INPUT_NORMALIZATION",
    "convert_checkpoint",
    "detect_format",
    "find_resnet",
    "msra_to_resnet_name",
    "torchvision_to_resnet_name",
]

TORCHVISION, MSRA, DETECTRON2, AS_IS = "torchvision", "msra", "detectron2", "as is"


@dataclass(frozen=True)
class InputNormalization:
    """The input a network was trained on: ``(pixel - mean) / std`` per channel.

    Attributes:
        channels: channel order, "RGB" or "BGR".
        mean, std: per channel, in ``channels`` order, in 0-255 pixel units.
    """

    channels: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __str__(self) -> str:
        mean, std = [round(m, 3) for m in self.mean], [round(s, 3) for s in self.std]
        return f"{self.channels} input, mean {mean}, std {std}"


INPUT_NORMALIZATION = {
    TORCHVISION: InputNormalization("RGB", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    MSRA: InputNormalization("BGR", (103.53, 116.28, 123.675), (1.0, 1.0, 1.0)),
}
"""What the networks of each source format expect (ImageNet mean / std in 0-255 units)."""

_TV_IGNORED = re.compile(r"^fc\.|(^|\.)num_batches_tracked$")
_MSRA_IGNORED = re.compile(r"^fc1000_|_momentum$|^pred_|^__")
_MSRA_BRANCH = {
    "branch2a": "conv1",
    "branch2b": "conv2",
    "branch2c": "conv3",
    "branch1": "shortcut",
}
_MSRA_PARAM = {
    "w": "weight",
    "b": "bias",
    "bn_s": "norm.weight",
    "bn_b": "norm.bias",
    "bn_rm": "norm.running_mean",
    "bn_riv": "norm.running_var",
}
_MSRA_SUFFIX = "(w|b|bn_s|bn_b|bn_rm|bn_riv)"
_MSRA_STEM = re.compile(rf"^(?:res_)?conv1_{_MSRA_SUFFIX}$")
_MSRA_BLOCK = re.compile(rf"^res(\d)_(\d+)_(branch2a|branch2b|branch2c|branch1)_{_MSRA_SUFFIX}$")
_D2_RESNET_KEY = re.compile(r"^(stem|res\d+)\.")


@dataclass
class ConvertedCheckpoint:
    """A state dict in the model's names and what was done to get it.

    Attributes:
        state: model key (or unconverted file key) -> tensor.
        source_format: "torchvision", "msra", "detectron2" or "as is".
        resnet_prefix: where the model's ResNet sits ("backbone.bottom_up."), None if it has none.
        renamed: model key -> file key, for keys whose name changed.
        adapted: model key -> what was done to its value besides renaming.
        ignored: file keys dropped on purpose (classifier, step counters, non-tensor values).
        warnings: differences between the file's network and the model the user should know.
    """

    state: dict[str, torch.Tensor]
    source_format: str
    resnet_prefix: str | None = None
    renamed: dict[str, str] = field(default_factory=dict)
    adapted: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def torchvision_to_resnet_name(key: str) -> str | None:
    """A torchvision / timm ResNet key -> this package's ResNet key (None: ignored on purpose).

    Keys that are neither ResNet parameters nor ignored come back unchanged.
    """
    if _TV_IGNORED.search(key):
        return None
    if key.startswith("conv1."):
        return "stem.conv1." + key[len("conv1.") :]
    if key.startswith("bn1."):
        return "stem.conv1.norm." + key[len("bn1.") :]
    m = re.match(r"layer(\d)\.(\d+)\.(.*)$", key)
    if not m:
        return key
    stage, block, rest = int(m.group(1)) + 1, m.group(2), m.group(3)
    rest = re.sub(r"^bn(\d)\.", r"conv\1.norm.", rest)
    rest = re.sub(r"^downsample\.0\.", "shortcut.", rest)
    rest = re.sub(r"^downsample\.1\.", "shortcut.norm.", rest)
    return f"res{stage}.{block}.{rest}"


def msra_to_resnet_name(key: str) -> str | None:
    """A Caffe2 / MSRA blob name -> this package's ResNet key (None: ignored on purpose).

    Blob names of no known pattern come back unchanged.
    """
    if _MSRA_IGNORED.search(key):
        return None
    m = _MSRA_STEM.match(key)
    if m:
        return "stem.conv1." + _MSRA_PARAM[m.group(1)]
    m = _MSRA_BLOCK.match(key)
    if m:
        stage, block, branch, suffix = m.groups()
        return f"res{stage}.{block}.{_MSRA_BRANCH[branch]}.{_MSRA_PARAM[suffix]}"
    return key


def detect_format(keys: list[str]) -> tuple[str, str]:
    """The layout of a state dict from its keys: ``(format, prefix of its ResNet keys)``.

    format is "torchvision", "msra", "detectron2" or "as is" (see the module docstring).
    """
    key_set = set(keys)
    for k in keys:
        if k.endswith("layer1.0.conv1.weight"):
            prefix = k[: -len("layer1.0.conv1.weight")]
            if prefix + "conv1.weight" in key_set:
                return TORCHVISION, prefix
    if any(_MSRA_STEM.match(k) or _MSRA_BLOCK.match(k) for k in keys):
        return MSRA, ""
    for k in keys:
        if k == "stem.conv1.weight" or k.endswith(".stem.conv1.weight"):
            return DETECTRON2, k[: -len("stem.conv1.weight")]
    return AS_IS, ""


def find_resnet(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The first ResNet in ``model`` (a module with a ``stem`` and a ``res2`` child) and its
    state-dict prefix ("" for the model itself, "backbone.bottom_up." under an FPN); None if none.
    """
    for name, module in model.named_modules():
        if isinstance(getattr(module, "stem", None), nn.Module) and hasattr(module, "res2"):
            return (name + "." if name else ""), module
    return None


def _to_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray) and value.dtype != object:
        value = np.ascontiguousarray(value)
        return torch.from_numpy(value if value.flags.writeable else value.copy())
    return None


def _stride_layout_warning(resnet: nn.Module, fmt: str) -> str | None:
    """torchvision bottlenecks stride in the 3x3 conv, MSRA ones in the first 1x1 conv."""
    for name, block in resnet.named_modules():
        conv1, conv3 = getattr(block, "conv1", None), getattr(block, "conv3", None)
        if conv1 is None or conv3 is None or getattr(block, "stride", 1) <= 1:
            continue
        in_1x1 = conv1.stride[0] > 1
        if in_1x1 == (fmt == MSRA):
            return None
        want = fmt == MSRA
        return (
            f"{fmt} weights stride in the {'1x1' if want else '3x3'} conv of each bottleneck, but "
            f"the model's ResNet strides in the {'1x1' if in_1x1 else '3x3'} conv (block {name}): "
            f"build it with stride_in_1x1={want} to compute what the file's network computed (in "
            f"the R-50 configs: model.backbone.bottom_up.stages.stride_in_1x1={want})"
        )
    return None


def _model_input(model: nn.Module) -> InputNormalization | None:
    mean, std = getattr(model, "pixel_mean", None), getattr(model, "pixel_std", None)
    fmt = getattr(model, "input_format", None)
    if not isinstance(mean, torch.Tensor) or not isinstance(std, torch.Tensor) or fmt is None:
        return None
    if mean.numel() != 3 or std.numel() != 3 or fmt not in ("RGB", "BGR"):
        return None
    return InputNormalization(fmt, tuple(mean.flatten().tolist()), tuple(std.flatten().tolist()))


def _adapt_first_conv(
    weight: torch.Tensor, source: InputNormalization, target: InputNormalization
) -> tuple[torch.Tensor, str | None, str | None]:
    """``weight`` [C_out, 3, kh, kw] of a conv trained on ``source`` input, rewritten for
    ``target`` input. Returns (weight, what was done or None, warning or None).

    Model channel j shows colour ``target.channels[j]``, which is file channel
    ``i = source.channels.index(...)``; with equal means, file input ``i`` equals model input
    ``j`` times ``target.std[j] / source.std[i]``, so ``W'[:, j] = W[:, i] * target.std[j] /
    source.std[i]`` is exact (zero padding stays zero: it is the mean pixel in both).
    """
    perm = [source.channels.index(c) for c in target.channels]
    means_agree = all(
        abs(target.mean[j] - source.mean[i]) <= 1e-3 * max(1.0, abs(source.mean[i]))
        for j, i in enumerate(perm)
    )
    if not means_agree:
        return (
            weight,
            None,
            f"the file's network expects {source}, the model normalises {target}: the means "
            "differ, so the first convolution is loaded unchanged; set model.pixel_mean, "
            "model.pixel_std and model.input_format to the file's values (in the model's channel "
            "order) for its features to match",
        )
    scale = torch.tensor([target.std[j] / source.std[i] for j, i in enumerate(perm)])
    if perm == [0, 1, 2] and torch.allclose(scale, torch.ones(3)):
        return weight, None, None
    new = weight[:, perm] * scale.to(weight.dtype).view(1, 3, 1, 1)
    what = (
        f"input channels {source.channels} -> {target.channels}, scaled by model std / file std "
        f"{[round(float(s), 6) for s in scale]} (file: {source}; model: {target})"
    )
    return new, what, None


def convert_checkpoint(state: Mapping[str, Any], model: nn.Module) -> ConvertedCheckpoint:
    """Rename (and where documented, adapt) the tensors of ``state`` for ``model``.

    Args:
        state: a flat state dict (tensors or numpy arrays) as read from a file.
        model: the model to load into (not modified).

    Returns:
        a ConvertedCheckpoint whose ``state`` holds tensors only; keys that match nothing keep
        their file name, so the loader reports them as unmatched.
    """
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):  # saved from (Distributed)DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
        keys = list(state)
    fmt, file_prefix = detect_format(keys)
    found = find_resnet(model)
    out = ConvertedCheckpoint(state={}, source_format=fmt)
    if found is None and fmt in (TORCHVISION, MSRA):
        out.warnings.append(
            f"the file holds {fmt} ResNet weights but the model has no ResNet (a module with "
            "'stem' and 'res2'), so they cannot be placed"
        )
    prefix = found[0] if found is not None else None
    out.resnet_prefix = prefix

    for key, value in state.items():
        tensor = _to_tensor(value)
        if tensor is None:
            out.ignored.append(key)
            continue
        new: str | None = key
        # names of no known pattern keep the file's name (reported as unmatched)
        if prefix is not None and fmt == TORCHVISION and key.startswith(file_prefix):
            rest = key[len(file_prefix) :]
            name = torchvision_to_resnet_name(rest)
            new = None if name is None else (prefix + name if name != rest else key)
        elif prefix is not None and fmt == MSRA:
            name = msra_to_resnet_name(key)
            new = None if name is None else (prefix + name if name != key else key)
        elif prefix is not None and fmt == DETECTRON2 and key.startswith(file_prefix):
            rest = key[len(file_prefix) :]
            if _D2_RESNET_KEY.match(rest):
                new = prefix + rest
        if new is None:
            out.ignored.append(key)
            continue
        out.state[new] = tensor
        if new != key:
            out.renamed[new] = key

    if found is not None and fmt in (TORCHVISION, MSRA):
        prefix, resnet = found
        model_state = model.state_dict()
        if fmt == MSRA:
            _fill_identity_statistics(out, model, model_state, prefix)
        warning = _stride_layout_warning(resnet, fmt)
        if warning:
            out.warnings.append(warning)
        target = _model_input(model)
        conv = prefix + "stem.conv1.weight"
        if target is not None and conv in out.state and out.state[conv].shape[1:2] == (3,):
            out.state[conv], what, warning = _adapt_first_conv(
                out.state[conv], INPUT_NORMALIZATION[fmt], target
            )
            if what:
                out.adapted[conv] = what
            if warning:
                out.warnings.append(warning)
    return out


def _fill_identity_statistics(
    out: ConvertedCheckpoint, model: nn.Module, model_state: dict[str, torch.Tensor], prefix: str
) -> None:
    """MSRA batch norms are folded into scale and bias: give each norm whose scale loads (same
    shape) identity statistics, mean 0 and variance ``1 - eps``, so that it computes exactly
    ``x * scale + bias``."""
    for key in list(out.state):
        if not (key.startswith(prefix) and key.endswith(".norm.weight")):
            continue
        base = key[: -len("weight")]
        mean_key, var_key = base + "running_mean", base + "running_var"
        if mean_key in out.state or mean_key not in model_state or var_key not in model_state:
            continue
        if tuple(out.state[key].shape) != tuple(model_state[key].shape):
            continue
        eps = float(getattr(model.get_submodule(base[:-1]), "eps", 0.0))
        out.state[mean_key] = torch.zeros_like(model_state[mean_key])
        out.state[var_key] = torch.full_like(model_state[var_key], 1.0 - eps)
        out.adapted[mean_key] = "identity statistics (the file's scale and bias include them)"
        out.adapted[var_key] = f"identity statistics, 1 - eps = {1.0 - eps:g}"
