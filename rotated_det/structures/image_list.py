"""``ImageList``: images of different sizes padded into one batch tensor."""

import functools
from typing import Any, cast

import torch
import torch.nn.functional as F

__all__ = ["ImageList"]


def _sizes_to_tensor(sizes: tuple[int, int]) -> torch.Tensor:
    """A vector from ints or (under tracing) 0-dim tensors, so traced sizes stay traced."""
    if torch.jit.is_tracing() and all(isinstance(s, torch.Tensor) for s in sizes):
        return torch.stack(cast(list[torch.Tensor], list(sizes)))
    return torch.as_tensor(sizes)


class ImageList:
    """
    A batch of images of possibly different sizes, padded to one tensor.

    Attributes:
        tensor: [N, ..., H, W] padded batch.
        image_sizes: list of N (height, width) of the images before padding.
    """

    def __init__(self, tensor: torch.Tensor, image_sizes: list[tuple[int, int]]):
        self.tensor = tensor
        self.image_sizes = image_sizes

    def __len__(self) -> int:
        return len(self.image_sizes)

    def __getitem__(self, idx: int) -> torch.Tensor:
        """Image ``idx`` without its padding: [..., H_idx, W_idx] (a view)."""
        size = self.image_sizes[idx]
        return self.tensor[idx, ..., : size[0], : size[1]]

    def to(self, *args: Any, **kwargs: Any) -> "ImageList":
        return ImageList(self.tensor.to(*args, **kwargs), self.image_sizes)

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    @staticmethod
    def from_tensors(
        tensors: list[torch.Tensor],
        size_divisibility: int = 0,
        pad_value: float = 0.0,
        padding_constraints: dict[str, int] | None = None,
    ) -> "ImageList":
        """
        Pad images at the bottom and right to a common size and stack them.

        Args:
            tensors: non-empty list of [..., H_i, W_i] tensors with equal leading dims.
            size_divisibility: if > 1, the padded H and W are rounded up to multiples of it (the
                largest stride of the backbone, typically).
            pad_value: value of the padding.
            padding_constraints: optional dict; "size_divisibility" overrides the argument, and
                "square_size" > 0 pads every image to that square size (before divisibility).

        Returns:
            ImageList with ``tensor`` [N, ..., H, W] and the original ``image_sizes``.
        """
        if not isinstance(tensors, (tuple, list)) or len(tensors) == 0:
            raise ValueError("ImageList.from_tensors expects a non-empty list of tensors")
        for i, t in enumerate(tensors):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"ImageList.from_tensors: element {i} is {type(t).__name__}")
            if torch.jit.is_tracing():  # shapes are traced values: nothing to check here
                continue
            if t.dim() < 2 or t.shape[:-2] != tensors[0].shape[:-2]:
                raise ValueError(
                    f"ImageList.from_tensors: element {i} has shape {tuple(t.shape)}; all must be "
                    f"[..., H, W] with the leading dims of element 0 {tuple(tensors[0].shape)}"
                )
        image_sizes = [(im.shape[-2], im.shape[-1]) for im in tensors]
        # The padded (height, width): a [2] tensor under tracing, else a list of ints (SymInts
        # under torch.export); both index and take arithmetic alike below.
        max_size: Any
        square_size = 0
        if padding_constraints is not None:
            square_size = padding_constraints.get("square_size", 0)
            size_divisibility = padding_constraints.get("size_divisibility", size_divisibility)

        if torch.jit.is_tracing():
            # sizes are 0-dim tensors: keep the arithmetic in tensors so the trace follows them
            image_sizes_tensor = [_sizes_to_tensor(x) for x in image_sizes]
            max_size = torch.stack(image_sizes_tensor).max(0).values
            if square_size > 0:
                max_size = torch.full_like(max_size, square_size)
            if size_divisibility > 1:
                stride = size_divisibility
                max_size = (max_size + (stride - 1)).div(stride, rounding_mode="floor") * stride
            # traced [2] tensors, which index like (height, width) pairs
            image_sizes = cast(list[tuple[int, int]], image_sizes_tensor)
        else:
            # ints, or symbolic ints under torch.export / torch.compile: sym_max and integer
            # arithmetic keep dynamic heights and widths symbolic (no specialisation)
            max_size = [
                functools.reduce(torch.sym_max, [s[0] for s in image_sizes]),
                functools.reduce(torch.sym_max, [s[1] for s in image_sizes]),
            ]
            if square_size > 0:
                max_size = [square_size, square_size]
            if size_divisibility > 1:
                stride = size_divisibility
                max_size = [(m + (stride - 1)) // stride * stride for m in max_size]

        if len(tensors) == 1:
            # F.pad keeps the padded size symbolic when tracing
            h, w = image_sizes[0][0], image_sizes[0][1]
            padding = [0, max_size[-1] - w, 0, max_size[-2] - h]
            batched = F.pad(tensors[0], padding, value=pad_value).unsqueeze_(0)
        else:
            batch_shape = [len(tensors)] + list(tensors[0].shape[:-2]) + list(max_size)
            batched = tensors[0].new_full(batch_shape, pad_value)
            for i, img in enumerate(tensors):
                batched[i, ..., : img.shape[-2], : img.shape[-1]].copy_(img)
        return ImageList(batched.contiguous(), image_sizes)
