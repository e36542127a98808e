"""Load the checkpoint of one part of a model (a backbone saved on its own) into the whole model.

Backbone weights usually come as the state dict of the network alone: a timm model's
``state_dict()`` or ``model.safetensors`` (``stem.0.weight``, ``stages.0.blocks.0.conv_dw.weight``,
..., ``head.fc.weight``), or a research backbone's ImageNet file (LSKNet's
``patch_embed1.proj.weight``, ...). In a detector the same tensors sit under a prefix, e.g.
``backbone.bottom_up.model.`` for a TimmBackbone. :func:`place_part_checkpoint` finds that prefix
from the names alone: the pair (model prefix ``P``, file prefix ``Q``) under which the most file
keys ``Q + rest`` have a model key ``P + rest``. Then, for each file tensor under ``Q``:

- ``P + rest`` is a model key: loaded there (listed as converted in the load report);
- a ``num_batches_tracked`` counter the model does not hold (frozen BatchNorms): ignored;
- ``rest``'s first module name (``head`` of ``head.fc.weight``) holds no tensor of the model
  under ``P``: ignored on purpose, the model dropped that part (classifier, final norm);
- anything else keeps its file name and is reported unmatched (a part the model has, with
  tensors it does not have: e.g. a deeper variant's extra blocks).

It is used only when it places more tensors than loading by name would and at least half of the
file's tensors under ``Q`` (names shared by chance, ``conv.weight``, pair a few), and never for
torchvision / MSRA / Detectron2 ResNet files when the model has this package's ResNet (those have
their documented conversion in :mod:`resnet_conversion`).
"""

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .resnet_conversion import AS_IS, ConvertedCheckpoint, detect_format, find_resnet

__all__ = ["PART", "place_part_checkpoint", "find_part_prefix"]

PART = "part"
"""``source_format`` of a checkpoint placed by :func:`place_part_checkpoint`."""


def _splits(key: str) -> list[tuple[str, str]]:
    """``(prefix, rest)`` at each module boundary of ``key`` whose rest still names a module
    and a tensor (``a.b.c.weight`` -> ``("", "a.b.c.weight")``, ``("a.", "b.c.weight")``,
    ``("a.b.", "c.weight")``); a bare ``weight`` would match anything."""
    out: list[tuple[str, str]] = []
    start = 0
    while True:
        rest = key[start:]
        if "." not in rest:
            return out
        out.append((key[:start], rest))
        start = key.index(".", start) + 1


def find_part_prefix(file_keys: list[str], model_keys: list[str]) -> tuple[str, str, int]:
    """The ``(model prefix, file prefix, count)`` under which most file keys name model keys.

    ``count`` is the number of keys that ``model prefix + rest`` / ``file prefix + rest`` pairs
    (0 with two empty prefixes when nothing pairs). Ties go to the shortest prefixes.
    """
    by_rest: dict[str, list[str]] = {}
    for key in file_keys:
        for q, rest in _splits(key):
            by_rest.setdefault(rest, []).append(q)
    counts: Counter[tuple[str, str]] = Counter()
    for key in model_keys:
        for p, rest in _splits(key):
            for q in by_rest.get(rest, ()):
                counts[(p, q)] += 1
    if not counts:
        return "", "", 0
    (p, q), n = min(counts.items(), key=lambda item: (-item[1], len(item[0][0]) + len(item[0][1])))
    return p, q, n


def _to_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray) and value.dtype != object:
        return torch.from_numpy(np.array(value))
    return None


def place_part_checkpoint(state: Mapping[str, Any], model: nn.Module) -> ConvertedCheckpoint | None:
    """Move the tensors of a part's checkpoint to where that part sits in ``model``.

    Args:
        state: a flat state dict as read from a file (tensors or numpy arrays; other values are
            ignored); keys of a (Distributed)DataParallel save (``module.``) are accepted.
        model: the model to load into (not modified).

    Returns:
        a ConvertedCheckpoint (``source_format="part"``, ``resnet_prefix`` = the model prefix the
        tensors went to), or None when placing by prefix would not load more tensors than
        loading by name or would pair fewer than half of the file's tensors under its prefix,
        or when the file is a ResNet of a layout that the ResNet conversion handles for this
        model.
    """
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        state = {k[len("module.") :]: v for k, v in state.items()}
        keys = list(state)
    if find_resnet(model) is not None and detect_format(keys)[0] != AS_IS:
        return None
    tensors = {k: t for k, t in ((k, _to_tensor(v)) for k, v in state.items()) if t is not None}
    model_keys = list(model.state_dict())
    model_set = set(model_keys)
    direct = sum(k in model_set for k in tensors)
    prefix, file_prefix, count = find_part_prefix(list(tensors), model_keys)
    under = sum(k.startswith(file_prefix) for k in tensors)
    # names shared by chance ("conv.weight") pair a few keys; a part's file pairs most of them
    if count <= direct or prefix == file_prefix or count < 0.5 * under:
        return None
    # first module names under the prefix that hold model tensors
    held = {k[len(prefix) :].split(".", 1)[0] for k in model_keys if k.startswith(prefix)}
    out = ConvertedCheckpoint(state={}, source_format=PART, resnet_prefix=prefix)
    out.ignored = [k for k in state if k not in tensors]
    for key, tensor in tensors.items():
        if not key.startswith(file_prefix):
            out.state[key] = tensor
            continue
        rest = key[len(file_prefix) :]
        new = prefix + rest
        if new in model_set:
            out.state[new] = tensor
            out.renamed[new] = key
        elif rest.endswith("num_batches_tracked") or rest.split(".", 1)[0] not in held:
            out.ignored.append(key)
        else:
            out.state[key] = tensor
    return out
