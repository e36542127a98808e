"""Load ImageNet-pretrained ResNet weights from torchvision or Detectron2 / MSRA checkpoints.

Three layouts are recognised (``detect_weight_format``):

- ``"torchvision"``: ``torchvision.models.resnet*().state_dict()`` saved with ``torch.save``
  (names ``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight``).
  These models put the stride in the 3x3 conv: build the ResNet with ``stride_in_1x1=False``, and
  normalise inputs with RGB ImageNet mean/std.
- ``"msra"``: the Caffe2 / Detectron ``.pkl`` files Detectron2's model zoo names ``R-50.pkl``: a
  pickled dict (optionally under ``"blobs"``) of numpy arrays named ``conv1_w``, ``res_conv1_bn_s``,
  ``res2_0_branch2a_w``, ``res2_0_branch1_bn_b``, ... These use ``stride_in_1x1=True``, BGR input
  and pixel std 1.
- ``"detectron2"``: a pickled or torch-saved dict (optionally under ``"model"``) already in this
  package's names (``stem.conv1.weight``, ``res2.0.conv1.norm.weight``, ``res2.0.shortcut.weight``),
  possibly with a ``backbone.bottom_up.`` prefix.

``load_resnet_weights`` converts names, loads what matches and returns a ``WeightLoadReport`` of
what did not (missing, unexpected, shape mismatches), which is also logged.
"""

import logging
import pickle
import re
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = [
    "WeightLoadReport",
    "detect_weight_format",
    "convert_torchvision_resnet_names",
    "convert_msra_resnet_names",
    "convert_detectron2_resnet_names",
    "read_weight_file",
    "load_resnet_weights",
]

logger = logging.getLogger(__name__)


@dataclass
class WeightLoadReport:
    """What happened when loading a checkpoint into a model.

    Attributes:
        loaded: model keys that received a value.
        missing: model keys with no value in the checkpoint (kept at their initialisation).
        unexpected: checkpoint keys (after conversion) that match no model key.
        shape_mismatch: ``{key: (checkpoint shape, model shape)}``; these were not loaded.
        ignored: checkpoint keys dropped on purpose (classifier, step counters, momentum blobs).
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: dict[str, tuple] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors"]
        if self.missing:
            lines.append(
                f"{len(self.missing)} model keys missing from the checkpoint: "
                + ", ".join(self.missing)
            )
        if self.unexpected:
            lines.append(
                f"{len(self.unexpected)} checkpoint keys unused by the model: "
                + ", ".join(self.unexpected)
            )
        for k, (a, b) in self.shape_mismatch.items():
            lines.append(f"shape mismatch for {k}: checkpoint {a} vs model {b}")
        if self.ignored:
            lines.append(
                f"{len(self.ignored)} checkpoint keys ignored on purpose: "
                + ", ".join(self.ignored)
            )
        return "\n".join(lines)


_TV_IGNORED = re.compile(r"^fc\.|num_batches_tracked$")
_MSRA_IGNORED = re.compile(r"^fc1000_|_momentum$|^pred_|^__")


def detect_weight_format(state: dict) -> str:
    """Return "torchvision", "msra" or "detectron2" from the key names of ``state``."""
    keys = list(state)
    if any(k.startswith("layer1.") for k in keys) or "bn1.weight" in state:
        return "torchvision"
    if "conv1_w" in state or any(re.match(r"res\d_\d+_branch", k) for k in keys):
        return "msra"
    if any(re.search(r"(^|\.)(stem\.conv1|res\d\.\d+\.)", k) for k in keys):
        return "detectron2"
    raise ValueError(
        "Cannot tell the format of this ResNet checkpoint from its keys (expected torchvision "
        f"'layer1.*', MSRA 'res2_0_branch2a_w' or Detectron2 'res2.0.conv1.weight'); first keys: "
        f"{keys[:8]}"
    )


def convert_torchvision_resnet_names(state: dict) -> tuple[dict, list[str]]:
    """Rename torchvision ResNet keys; returns (converted dict, ignored keys)."""
    out, ignored = {}, []
    for k, v in state.items():
        if _TV_IGNORED.search(k):
            ignored.append(k)
            continue
        n = k
        if n.startswith("conv1."):
            n = "stem.conv1." + n[len("conv1.") :]
        elif n.startswith("bn1."):
            n = "stem.conv1.norm." + n[len("bn1.") :]
        else:
            m = re.match(r"layer(\d)\.(\d+)\.(.*)$", n)
            if m:
                stage, block, rest = int(m.group(1)) + 1, m.group(2), m.group(3)
                rest = re.sub(r"^bn(\d)\.", r"conv\1.norm.", rest)
                rest = re.sub(r"^downsample\.0\.", "shortcut.", rest)
                rest = re.sub(r"^downsample\.1\.", "shortcut.norm.", rest)
                n = f"res{stage}.{block}.{rest}"
        out[n] = v
    return out, ignored


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


def convert_msra_resnet_names(state: dict) -> tuple[dict, list[str]]:
    """Rename Caffe2 / MSRA ResNet blob names; returns (converted dict, ignored keys)."""
    out, ignored = {}, []
    for k, v in state.items():
        if _MSRA_IGNORED.search(k):
            ignored.append(k)
            continue
        m = re.match(r"^(?:res_)?conv1_(w|b|bn_s|bn_b|bn_rm|bn_riv)$", k)
        if m:
            suffix = m.group(1)
            out["stem.conv1." + _MSRA_PARAM[suffix]] = v
            continue
        m = re.match(
            r"^res(\d)_(\d+)_(branch2a|branch2b|branch2c|branch1)_(w|b|bn_s|bn_b|bn_rm|bn_riv)$", k
        )
        if m:
            stage, block, branch, suffix = m.groups()
            out[f"res{stage}.{block}.{_MSRA_BRANCH[branch]}.{_MSRA_PARAM[suffix]}"] = v
            continue
        out[k] = v  # left as is: reported as unexpected
    return out, ignored


def convert_detectron2_resnet_names(state: dict) -> tuple[dict, list[str]]:
    """Strip ``backbone.bottom_up.`` / ``backbone.`` prefixes; returns (dict, ignored keys)."""
    out, ignored = {}, []
    for k, v in state.items():
        if k.endswith("num_batches_tracked") or k.startswith("__"):
            ignored.append(k)
            continue
        n = re.sub(r"^(backbone\.)?(bottom_up\.)?", "", k)
        out[n] = v
    return out, ignored


def read_weight_file(path: str) -> dict:
    """Read a ``.pkl`` (pickle of numpy arrays) or torch-saved checkpoint into a flat dict.

    Unwraps ``{"blobs": ...}`` (Detectron) and ``{"model": ...}`` / ``{"state_dict": ...}``.
    """
    from iopath.common.file_io import g_pathmgr

    with g_pathmgr.open(path, "rb") as f:
        if path.endswith(".pkl"):
            data = pickle.load(f, encoding="latin1")
        else:
            data = torch.load(f, map_location="cpu", weights_only=False)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(data).__name__}")
    for wrapper in ("blobs", "model", "state_dict"):
        if wrapper in data and isinstance(data[wrapper], dict):
            data = data[wrapper]
            break
    return data


def _find_resnet(model: nn.Module) -> nn.Module:
    # FPN (and anything else wrapping a bottom-up network) exposes it as ``bottom_up``;
    # a detector exposes its backbone as ``backbone``.
    seen = model
    for _ in range(4):
        if hasattr(seen, "stem") and hasattr(seen, "stages"):
            return seen
        nxt = getattr(seen, "backbone", None) or getattr(seen, "bottom_up", None)
        if nxt is None:
            break
        seen = nxt
    raise ValueError(f"No ResNet (module with 'stem' and 'stages') found in {type(model).__name__}")


def _warn_stride_layout(resnet: nn.Module, fmt: str) -> None:
    """torchvision bottlenecks stride in the 3x3 conv, MSRA ones in the first 1x1 conv."""
    from .resnet import BottleneckBlock

    for name, block in resnet.named_modules():
        if isinstance(block, BottleneckBlock) and block.stride > 1:
            in_1x1 = block.conv1.stride[0] > 1
            if fmt == "torchvision" and in_1x1:
                logger.warning(
                    "torchvision weights loaded into a ResNet built with stride_in_1x1=True "
                    "(block %s): build it with stride_in_1x1=False to match them",
                    name,
                )
            elif fmt == "msra" and not in_1x1:
                logger.warning(
                    "MSRA weights loaded into a ResNet built with stride_in_1x1=False "
                    "(block %s): build it with stride_in_1x1=True to match them",
                    name,
                )
            return


def load_resnet_weights(
    model: nn.Module, source: str | dict, format: str = "auto", strict: bool = False
) -> WeightLoadReport:
    """Load ResNet weights into ``model`` (a ResNet, an FPN over one, or a detector).

    Args:
        model: target module; the ResNet is found through ``.backbone`` / ``.bottom_up``.
        source: a file path (``.pkl`` or torch file) or an already-loaded dict.
        format: "auto", "torchvision", "msra" or "detectron2".
        strict: raise ``ValueError`` (with the report) if anything is missing, unexpected or of
            the wrong shape.

    Returns:
        a WeightLoadReport; its summary is logged at INFO (WARNING when something did not match).
    """
    state = read_weight_file(source) if isinstance(source, str) else dict(source)
    fmt = detect_weight_format(state) if format == "auto" else format
    converters = {
        "torchvision": convert_torchvision_resnet_names,
        "msra": convert_msra_resnet_names,
        "detectron2": convert_detectron2_resnet_names,
    }
    if fmt not in converters:
        raise ValueError(f"Unknown weight format {fmt!r}; expected one of {sorted(converters)}")
    converted, ignored = converters[fmt](state)
    resnet = _find_resnet(model)
    target = resnet.state_dict()
    report = WeightLoadReport(ignored=sorted(ignored))
    to_load = {}
    for k, v in converted.items():
        if isinstance(v, np.ndarray):
            v = torch.from_numpy(np.ascontiguousarray(v))
        elif not isinstance(v, torch.Tensor):
            report.unexpected.append(k)
            continue
        if k not in target:
            report.unexpected.append(k)
            continue
        if tuple(v.shape) != tuple(target[k].shape):
            report.shape_mismatch[k] = (tuple(v.shape), tuple(target[k].shape))
            continue
        to_load[k] = v.to(target[k].dtype)
    # A frozen BN with only scale/bias in the checkpoint (MSRA) has identity statistics.
    for k in list(target):
        if k.endswith(".running_mean") or k.endswith(".running_var"):
            base = k.rsplit(".", 1)[0]
            if k not in to_load and base + ".weight" in to_load:
                to_load[k] = (
                    torch.zeros_like(target[k])
                    if k.endswith("mean")
                    else torch.ones_like(target[k])
                )
    report.loaded = sorted(to_load)
    report.missing = sorted(k for k in target if k not in to_load)
    report.unexpected.sort()
    if strict and (report.missing or report.unexpected or report.shape_mismatch):
        raise ValueError(f"ResNet weights ({fmt}) do not match the model:\n{report.summary()}")
    resnet.load_state_dict(to_load, strict=False)
    _warn_stride_layout(resnet, fmt)
    bad = report.missing or report.unexpected or report.shape_mismatch
    logger.log(
        logging.WARNING if bad else logging.INFO,
        "Loading %s ResNet weights: %s",
        fmt,
        report.summary(),
    )
    return report
