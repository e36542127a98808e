"""DefaultPredictor: images in, rotated detections out, from a LazyConfig."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any, cast, overload

import numpy as np
import torch

from rotated_det.config import select
from rotated_det.structures import Instances

__all__ = [
    "DefaultPredictor",
    "PRECISIONS",
    "build_test_augmentations",
    "check_precision",
    "config_input_format",
]

logger = logging.getLogger(__name__)

# The ``precision`` values of DefaultPredictor and the autocast dtype of each (None: no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {
    "float32": None,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def build_test_augmentations(cfg: Any) -> list:
    """The test-time augmentations of a LazyConfig, instantiated.

    Read from ``cfg.dataloader.test.mapper.augmentations`` (the test loader's mapper, as in
    ``configs/common/data``); an empty list when the config has none (images are then fed at their
    own size, which a warning says).
    """
    from rotated_det.config import instantiate

    augs = select(cfg, "dataloader.test.mapper.augmentations")
    if augs is None:
        logger.warning(
            "The config has no dataloader.test.mapper.augmentations: images are run at their "
            "own size, without the test-time resize."
        )
        return []
    return [instantiate(a) for a in augs]


def config_input_format(cfg: Any, model: torch.nn.Module | None = None) -> str:
    """Channel order the model takes: the model's ``input_format`` attribute, else
    ``cfg.model.input_format``, else the test mapper's ``image_format``, else "BGR"."""
    for value in (
        getattr(model, "input_format", None) if model is not None else None,
        select(cfg, "model.input_format"),
        select(cfg, "dataloader.test.mapper.image_format"),
    ):
        if isinstance(value, str) and value:
            return value.upper()
    return "BGR"


class DefaultPredictor:
    """Builds a model from a LazyConfig, loads its weights and runs it on images.

    What it does, in order: instantiate ``cfg.model``, put it in eval mode on ``cfg.train.device``
    (default: CUDA when available, else CPU), load ``cfg.train.init_checkpoint`` with
    :class:`DetectionCheckpointer` (its EMA weights, ``"model_ema"``, when the config has
    ``train.model_ema.enabled=True`` and the file has them: ``uses_ema_weights`` says which);
    then for each image: convert its channels to the model's input format, apply the test-time
    augmentations (the resize of the config's test loader), run the model with
    ``height``/``width`` set to the original size so that the detections come back in the
    image's own pixels.

    A list of images runs in batches: up to ``batch_size`` images per model call. Only images of
    the same size share a call (a list of several sizes makes one group of calls per size, the
    results still in the list's order), so that every image's detections are those it gets on
    its own: padding a smaller image to a larger one's size in a batch changes the
    convolutions' view of its bottom and right borders and lets dense detectors fire in the
    padding (measured on the small test detectors: scores move by up to 0.3 and the top-20 boxes
    differ). Frames of a video, and datasets of fixed-size tiles, all batch fully.

    ``precision`` runs the model under ``torch.autocast``: "bfloat16" (CPU, and CUDA devices
    that support it) or "float16" (CUDA only). The compiled ops widen half inputs to float32
    themselves and the returned boxes and scores are float32 in every precision. Half precision
    moves boxes and scores slightly (8 significant bits for bfloat16); whether it is faster
    depends on the hardware: CPUs with AMX or AVX512-BF16 run bfloat16 natively, others emulate
    it (``dev/bench_predictor.py`` measures it and says which the CPU has).

    ``fuse_conv_bn`` (default True) folds every batch norm that follows a convolution into it
    after the weights are loaded (:func:`rotated_det.layers.fuse_conv_bn`; ``folded_norms`` says
    how many): the detections are those of the unfused model up to float32 rounding, and models
    with a norm after each convolution run faster. ``self.model`` is then no longer the
    trainable module of the config: pass False to keep it so (e.g. to fine-tune or save it).

    ``channels_last`` (default: on a CPU device) stores the convolution weights channels-last
    (:func:`rotated_det.layers.to_channels_last`), the layout oneDNN's CPU convolutions run
    fastest in; the feature maps follow it, the detections are unchanged up to rounding. Both
    together, RTMDet-R tiny at 1024 px, 2 threads, whole detector (``dev/bench_realtime.py``,
    idle machine): 341 ms as trained, 326 ms folded, 226 ms folded and channels-last.

    Example::

        cfg = LazyConfig.load("configs/DOTA-Rotated/rotated_retinanet_r50_fpn_1x.py")
        cfg.train.init_checkpoint = "model_final.pth"
        predictor = DefaultPredictor(cfg)
        instances = predictor(cv2.imread("P0706.png"))  # Instances(pred_boxes, scores, ...)
        batch = predictor([cv2.imread(f) for f in files])  # list of Instances, one per file

    Args:
        cfg: a LazyConfig (see :func:`build_test_augmentations`, :func:`config_input_format`).
        image_format: channel order of the images passed to :meth:`__call__` ("BGR" as returned
            by ``cv2.imread``, or "RGB").
        batch_size: the most images per model call when :meth:`__call__` gets a list (>= 1).
        precision: "float32" (default), "bfloat16" or "float16" (a key of :data:`PRECISIONS`).
        fuse_conv_bn: fold batch norms into the convolutions before them (see above).
        channels_last: store the convolution weights channels-last (see above); None (default):
            on CPU devices only.

    Raises:
        ValueError: an unknown ``image_format`` or ``precision``, a precision the device does not
            run, or ``batch_size`` < 1.
    """

    def __init__(
        self,
        cfg: Any,
        image_format: str = "BGR",
        batch_size: int = 4,
        precision: str = "float32",
        fuse_conv_bn: bool = True,
        channels_last: bool | None = None,
    ):
        from rotated_det.config import instantiate
        from rotated_det.layers import conv_bn_fusion, to_channels_last

        from .model_ema import load_inference_weights

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"DefaultPredictor: batch_size must be an int >= 1, got {batch_size!r}"
            )
        self.batch_size = batch_size
        self.cfg = cfg
        device = select(cfg, "train.device") or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(device)
        self.precision = precision
        self.autocast_dtype = check_precision(precision, self.device)
        self.model = instantiate(cfg.model)
        self.model.eval()
        self.model.to(self.device)
        weights = select(cfg, "train.init_checkpoint")
        self.uses_ema_weights = False
        if weights:
            self.uses_ema_weights = load_inference_weights(
                self.model,
                weights,
                use_ema=bool(select(cfg, "train.model_ema.enabled")),
                allow_unsafe=bool(select(cfg, "train.allow_unsafe_checkpoint")),
            )
        else:
            logger.warning(
                "cfg.train.init_checkpoint is empty: the predictor runs randomly initialised "
                "weights."
            )
        self.folded_norms = conv_bn_fusion.fuse_conv_bn(self.model) if fuse_conv_bn else 0
        self.channels_last = self.device.type == "cpu" if channels_last is None else channels_last
        if self.channels_last:
            to_channels_last(self.model)
        self.augmentations = build_test_augmentations(cfg)
        self.image_format = image_format.upper()
        self.input_format = config_input_format(cfg, self.model)
        for fmt in (self.image_format, self.input_format):
            if fmt not in ("BGR", "RGB"):
                raise ValueError(f"DefaultPredictor supports BGR or RGB images, got {fmt!r}")

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context that runs the model in ``precision``: ``torch.autocast`` on the model's
        device for float16/bfloat16, a no-op for float32. For callers that run ``self.model``
        themselves (e.g. sliding-window inference)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def preprocess(self, original_image: np.ndarray) -> dict:
        """The model input dict for an (H, W, 3) image: ``image`` float32 (3, H', W') after the
        test-time resize, ``height`` = H, ``width`` = W. The image is checked and converted by
        :func:`rotated_det.data.image_input.as_uint8_image` (uint8 as is, uint16 by ``>> 8``,
        float and other dtypes or shapes refused with a message saying what to do)."""
        from rotated_det.data.image_input import as_uint8_image
        from rotated_det.data.transforms import apply_augmentations

        image = as_uint8_image(original_image, "DefaultPredictor", self.image_format)
        height, width = image.shape[:2]
        if self.image_format != self.input_format:
            image = image[:, :, ::-1]
        image = np.ascontiguousarray(image)
        if self.augmentations:
            image, _ = apply_augmentations(self.augmentations, image)
        tensor = torch.as_tensor(np.ascontiguousarray(image.astype("float32").transpose(2, 0, 1)))
        return {"image": tensor.to(self.device), "height": height, "width": width}

    @overload
    def __call__(self, images: np.ndarray) -> Instances: ...

    @overload
    def __call__(self, images: list[np.ndarray] | tuple[np.ndarray, ...]) -> list[Instances]: ...

    def __call__(
        self, images: np.ndarray | list[np.ndarray] | tuple[np.ndarray, ...]
    ) -> Instances | list[Instances]:
        """Detect on one image, or on a list of images in batches.

        Args:
            images: an (H, W, 3) uint8 array in ``image_format`` channel order, or a list (or
                tuple) of them, of any sizes. uint16 is converted by ``value >> 8`` (the full
                16-bit range to 0-255); float images are refused, their range ([0, 1] or
                [0, 255]) being ambiguous. Every image of a list is checked before the model
                runs; an error names the image's index.

        Returns:
            For one image, Instances of size (H, W): ``pred_boxes`` (RotatedBoxes in the image's
            pixels), ``scores``, ``pred_classes``, floats in float32. For a list, a list of such
            Instances in the list's order, each in its own image's pixels.

        Raises:
            ImageInputError: an image of a refused type, dtype or shape.
            ValueError: an empty list.
        """
        if isinstance(images, (list, tuple)):
            return self._predict_list(images)
        return self._run([self.preprocess(images)])[0]

    def _predict_list(self, images: Sequence[np.ndarray]) -> list[Instances]:
        from rotated_det.data.image_input import as_uint8_image

        n = len(images)
        if n == 0:
            raise ValueError(
                "DefaultPredictor got an empty list of images: pass one (H, W, 3) uint8 image or "
                "a non-empty list of them"
            )
        # Checked (and uint16 converted) before any model call, so that a bad image at the end
        # of a long list fails at once.
        checked = [
            as_uint8_image(img, f"DefaultPredictor (image {i} of a list of {n})", self.image_format)
            for i, img in enumerate(images)
        ]
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(checked):
            by_size.setdefault(img.shape[:2], []).append(i)
        results: list[Instances | None] = [None] * n
        for indices in by_size.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                inputs = [self.preprocess(checked[i]) for i in chunk]
                # test-time augmentations are deterministic in the configs, but a random one
                # could give equal inputs different sizes
                by_shape: dict[tuple[int, ...], list[int]] = {}
                for k, d in enumerate(inputs):
                    by_shape.setdefault(tuple(d["image"].shape), []).append(k)
                for ks in by_shape.values():
                    for k, inst in zip(ks, self._run([inputs[k] for k in ks])):
                        results[chunk[k]] = inst
        return cast("list[Instances]", results)  # every index is in one chunk

    def _run(self, inputs: list[dict]) -> list[Instances]:
        with torch.no_grad(), self.autocast():
            outputs = self.model(inputs)
        if len(outputs) != len(inputs):
            raise RuntimeError(
                f"DefaultPredictor: the model returned {len(outputs)} outputs for {len(inputs)} "
                "images (a model returns one {'instances': Instances} per input)"
            )
        if self.autocast_dtype is None:
            return [out["instances"] for out in outputs]
        return [_half_to_float32(out["instances"]) for out in outputs]


def check_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None for float32).

    Raises:
        ValueError: ``precision`` is not a key of :data:`PRECISIONS`, or ``device`` does not run
            it: float16 needs CUDA, bfloat16 a CPU or a CUDA device that supports it.
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"DefaultPredictor: precision must be one of {sorted(PRECISIONS)}, got {precision!r}"
        )
    dtype = PRECISIONS[precision]
    if dtype is None:
        return None
    if device.type == "cuda":
        if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise ValueError(
                f"DefaultPredictor: precision='bfloat16' is not supported by the CUDA device "
                f"{torch.cuda.get_device_name(device)}; use precision='float16'"
            )
        return dtype
    if device.type == "cpu":
        if dtype == torch.float16:
            raise ValueError(
                "DefaultPredictor: precision='float16' runs on CUDA only (the model is on the "
                "CPU); use precision='bfloat16' on the CPU, or 'float32'"
            )
        return dtype
    raise ValueError(
        f"DefaultPredictor: precision={precision!r} is supported on CPU and CUDA devices only, "
        f"not on {device.type!r}; use precision='float32'"
    )


_HALF = (torch.float16, torch.bfloat16)


def _half_to_float32(instances: Instances) -> Instances:
    """``instances`` with every float16/bfloat16 tensor field (and box field's ``tensor``) widened
    to float32: the outputs of a model that leaves some in the autocast dtype."""
    for name, value in list(instances.get_fields().items()):
        if isinstance(value, torch.Tensor):
            if value.dtype in _HALF:
                instances.set(name, value.float())
        elif isinstance(getattr(value, "tensor", None), torch.Tensor):
            if value.tensor.dtype in _HALF:
                instances.set(name, type(value)(value.tensor.float()))
    return instances
