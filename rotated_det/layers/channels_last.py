"""The memory format of a model's 4-d weights: channels-last for CPU inference, contiguous for
graph export.

oneDNN's CPU convolutions run fastest on channels-last (NHWC) tensors, and a convolution whose
weight is channels-last makes its output channels-last, so storing the 4-d weights that way
switches a whole convolutional network to that layout. ``model.to(memory_format=
torch.channels_last)`` does this but refuses a model holding a 5-d tensor (it would need
``channels_last_3d``), e.g. S2A-Net's active rotating filters (``[out, in, orientations, kh,
kw]``, turned into a 4-d convolution weight at each forward); :func:`set_weight_memory_format`
converts the 4-d tensors and leaves the others as they are.
"""

import torch
from torch import nn

__all__ = ["set_weight_memory_format", "to_channels_last"]


@torch.no_grad()
def set_weight_memory_format(model: nn.Module, memory_format: torch.memory_format) -> int:
    """Store every 4-d parameter and buffer of ``model`` in ``memory_format``
    (``torch.channels_last`` or ``torch.contiguous_format``), in place; tensors of other ranks
    keep their layout. Values are unchanged.

    Returns:
        The number of 4-d tensors (all of them, whether their layout changed or not).
    """
    count = 0
    for module in model.modules():
        for param in module._parameters.values():
            if param is not None and param.dim() == 4:
                param.data = param.data.contiguous(memory_format=memory_format)
                count += 1
        for name, buf in module._buffers.items():
            if buf is not None and buf.dim() == 4:
                module._buffers[name] = buf.contiguous(memory_format=memory_format)
                count += 1
    return count


def to_channels_last(model: nn.Module) -> int:
    """:func:`set_weight_memory_format` with ``torch.channels_last`` (what DefaultPredictor does
    on a CPU); returns the number of 4-d tensors."""
    return set_weight_memory_format(model, torch.channels_last)
