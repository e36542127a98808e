"""Any timm model that can return intermediate feature maps, as a Backbone (e.g. under an FPN).

``TimmBackbone("convnext_tiny")`` builds the timm network with ``features_only=True`` (timm's
feature getter: the network's own ``forward_intermediates``, classifier and final norm removed) and
names its feature maps by stride, like this package's ResNet: stride 4 is ``"res2"``, 8 ``"res3"``,
16 ``"res4"``, 32 ``"res5"`` (``"res{log2(stride)}"``), so the FPN configs written for a ResNet
(``in_features=["res2", ..., "res5"]``) take it unchanged. Channels and strides come from timm's
``feature_info``.

Weights: the timm network is the child ``model``, so its parameters keep timm's own names under
that prefix (``model.stages.0.blocks.0.conv_dw.weight``). A timm checkpoint (``torch.save`` of
``timm.create_model(name).state_dict()``, or the ``model.safetensors`` file of a timm model) is
loaded through ``train.init_checkpoint``: the checkpointer finds where the file's keys sit in the
detector (``backbone.bottom_up.model.``) and reports the classifier as ignored (see
``rotated_det.checkpoint.part_placement``). ``pretrained=True`` instead asks timm to download
the weights itself (needs ``huggingface_hub`` and network access).

timm is imported when a TimmBackbone is built, not when rotated_det is imported.
"""

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .backbone import Backbone

__all__ = ["TimmBackbone", "import_timm"]


def import_timm() -> Any:
    """The ``timm`` module, or an ImportError that says how to install it."""
    try:
        import timm
    except ImportError as e:
        raise ImportError(
            "TimmBackbone needs the timm package (a dependency of rotated_det: "
            "`pip install timm`, or `bash dev/setup_env.sh` for the pinned version)."
        ) from e
    return timm


class TimmBackbone(Backbone):
    """A timm network's multi-scale feature maps, named by stride.

    Args:
        model_name: a timm model name, e.g. "resnet50", "convnext_tiny",
            "swin_tiny_patch4_window7_224"; the model must implement ``forward_intermediates``
            (most of timm's convolutional and hierarchical transformer families do).
        out_indices: timm feature levels to return (indices into the network's ``feature_info``,
            e.g. ``(1, 2, 3, 4)`` for a ResNet's strides 4-32, ``(0, 1, 2, 3)`` for ConvNeXt or
            Swin). None: every level of stride 4 or more.
        pretrained: let timm download and load its ImageNet weights (network access needed);
            offline, leave False and set ``train.init_checkpoint`` to a timm weight file.
        freeze_at: 0 trains everything; ``k >= 1`` freezes what runs before the first returned
            level (the stem) and the first ``k - 1`` returned levels, as ResNet's ``freeze_at``:
            their parameters stop training, their BatchNorms become frozen ones (timm's
            ``freeze_batch_norm_2d``, which keeps the activation of fused BatchNormAct) and they
            stay in eval mode (no dropout or drop-path). Parts are told apart by timm's module
            names, in the network's registration order.
        freeze_bn: turn every BatchNorm of the network into a frozen one (fixed statistics and
            affine parameters, as the R-50 configs' FrozenBN for pre-trained ResNets at 2 images
            per GPU). ConvNeXt and Swin use LayerNorm and have none.
        out_names: names of the returned levels instead of ``"res{log2(stride)}"`` (needed when
            two levels share a stride or a stride is not a power of two).
        input_format: channel order of the (normalised) images given to ``forward``: timm's
            weights are trained on RGB, so "BGR" (the library's loaders) reverses the channels
            before the network; the detector's ``pixel_mean`` / ``pixel_std`` stay in the
            loader's order.
        model_kwargs: more arguments of ``timm.create_model``, e.g. ``drop_path_rate=0.2``, or
            for Swin ``img_size=1024, dynamic_img_size=True`` (see the configs' helper).

    ``forward(x)``: ``x`` ``[N, 3, H, W]`` -> ``{name: [N, C_name, ~H / s_name, ~W / s_name]}``
    with ``C`` and ``s`` from :meth:`output_shape`; sizes are exact when ``H`` and ``W`` are
    multiples of the largest stride (the detectors pad to the FPN's ``size_divisibility``), else
    rounded as the network rounds (up for padding convolutions and Swin, down for ConvNeXt's
    2x2 stride-2 downsampling).
    """

    def __init__(
        self,
        model_name: str,
        out_indices: Sequence[int] | None = None,
        *,
        pretrained: bool = False,
        freeze_at: int = 0,
        freeze_bn: bool = False,
        out_names: Sequence[str] | None = None,
        input_format: str = "RGB",
        model_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        if input_format not in ("RGB", "BGR"):
            raise ValueError(
                f"TimmBackbone input_format must be 'RGB' or 'BGR', got {input_format!r}"
            )
        timm = import_timm()
        kwargs = dict(model_kwargs or {})
        for reserved in ("features_only", "feature_cls", "out_indices", "pretrained"):
            if reserved in kwargs:
                raise ValueError(
                    f"TimmBackbone({model_name!r}): model_kwargs may not set {reserved!r}; "
                    "it is an argument of TimmBackbone itself"
                )
        if out_indices is not None:
            kwargs["out_indices"] = tuple(int(i) for i in out_indices)
        features = timm.create_model(
            model_name, pretrained=pretrained, features_only=True, feature_cls="getter", **kwargs
        )
        network = features.model
        if not hasattr(network, "forward_intermediates"):
            raise ValueError(
                f"timm model {model_name!r} ({type(network).__name__}) has no "
                "forward_intermediates, which TimmBackbone uses; pick a model family that has it"
            )
        # per level the network computes (timm's lists follow info.out_indices)
        info = features.feature_info
        indices = [int(i) for i in info.out_indices]
        all_strides = [int(r) for r in info.reduction()]
        all_channels = [int(c) for c in info.channels()]
        all_modules = [str(m) for m in info.module_name()]
        levels = list(range(len(indices)))  # the returned ones
        if out_indices is None:  # every level of stride >= 4
            levels = [j for j in levels if all_strides[j] >= 4]
        strides = [all_strides[j] for j in levels]
        channels = [all_channels[j] for j in levels]
        if out_names is None:
            names = [_stride_name(model_name, s) for s in strides]
            if len(set(names)) != len(names):
                raise ValueError(
                    f"timm model {model_name!r} has several levels of one stride {strides}; "
                    "pass out_names to name them"
                )
        else:
            names = list(out_names)
            if len(names) != len(levels) or len(set(names)) != len(names):
                raise ValueError(
                    f"TimmBackbone({model_name!r}): out_names {names} must be {len(levels)} "
                    f"distinct names, one per level of strides {strides}"
                )
        self.model = network
        self.model_name = model_name
        self.input_format = input_format
        # the indices forward_intermediates takes, and which of its outputs are returned
        self._indices = indices
        self._returned = [levels.index(j) if j in levels else -1 for j in range(len(indices))]
        self._out_features = names
        self._out_feature_channels = dict(zip(names, channels))
        self._out_feature_strides = dict(zip(names, strides))
        self._frozen: list[nn.Module] = []
        if freeze_bn:
            self.model = timm.layers.freeze_batch_norm_2d(self.model)
        self.freeze(freeze_at, [all_modules[j] for j in levels])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: ``[N, C, H, W]`` image batch; returns ``{name: feature map}`` (NCHW)."""
        if x.dim() != 4:
            raise ValueError(f"TimmBackbone takes [N, C, H, W] inputs, got shape {tuple(x.shape)}")
        if self.input_format == "BGR":
            x = x.flip(1)
        maps = self.model.forward_intermediates(
            x, indices=self._indices, norm=False, output_fmt="NCHW", intermediates_only=True
        )
        out = {}
        for feature, returned in zip(maps, self._returned):
            if returned >= 0:
                out[self._out_features[returned]] = feature
        return out

    def freeze(self, freeze_at: int, level_modules: list[str]) -> "TimmBackbone":
        """Freeze the parts before ``level_modules[freeze_at - 1]`` (see the class docstring)."""
        if freeze_at <= 0:
            return self
        freeze_batch_norm_2d = import_timm().layers.freeze_batch_norm_2d
        units = _units(self.model, level_modules)
        stop = level_modules[freeze_at - 1] if freeze_at <= len(level_modules) else None
        if stop is not None and stop not in dict(units):
            raise ValueError(
                f"TimmBackbone({self.model_name!r}): cannot find the module {stop!r} of feature "
                f"level {freeze_at - 1} among {[n for n, _ in units]}"
            )
        for name, module in units:
            if name == stop:
                break
            for p in module.parameters():
                p.requires_grad = False
            # BatchNorm(+act) layers become timm's frozen ones, replaced in their parent
            module = freeze_batch_norm_2d(module)
            parent, _, attr = name.rpartition(".")
            (self.model.get_submodule(parent) if parent else self.model).add_module(attr, module)
            module.eval()
            self._frozen.append(module)
        return self

    def train(self, mode: bool = True) -> "TimmBackbone":
        super().train(mode)
        for module in self._frozen:  # frozen parts keep eval behaviour (dropout, drop-path)
            module.eval()
        return self


def _stride_name(model_name: str, stride: int) -> str:
    level = math.log2(stride)
    if stride < 1 or level != int(level):
        raise ValueError(
            f"timm model {model_name!r} has a feature level of stride {stride}, not a power of "
            "two; pass out_names to name the levels"
        )
    return f"res{int(level)}"


def _units(network: nn.Module, level_modules: list[str]) -> list[tuple[str, nn.Module]]:
    """The network's top-level children in registration order, with a container that holds the
    feature levels (``stages`` of ``stages.0``) replaced by its children."""
    containers = {m.rsplit(".", 1)[0] for m in level_modules if "." in m}
    units: list[tuple[str, nn.Module]] = []
    for name, child in network.named_children():
        if name in containers:
            units.extend((f"{name}.{n}", c) for n, c in child.named_children())
        else:
            units.append((name, child))
    return units
