"""DefaultPredictor: one image in, rotated detections out, from a LazyConfig."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from rotated_det.config import select

__all__ = ["DefaultPredictor", "build_test_augmentations", "config_input_format"]

logger = logging.getLogger(__name__)


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
    """Builds a model from a LazyConfig, loads its weights and runs it on single images.

    What it does, in order: instantiate ``cfg.model``, put it in eval mode on ``cfg.train.device``
    (default: CUDA when available, else CPU), load ``cfg.train.init_checkpoint`` with
    :class:`DetectionCheckpointer` (its EMA weights, ``"model_ema"``, when the config has
    ``train.model_ema.enabled=True`` and the file has them: ``uses_ema_weights`` says which);
    then for each image: convert its channels to the model's input format, apply the test-time
    augmentations (the resize of the config's test loader), run the model with
    ``height``/``width`` set to the original size so that the detections come back in the
    image's own pixels.

    Example::

        cfg = LazyConfig.load("configs/DOTA-Rotated/rotated_retinanet_r50_fpn_1x.py")
        cfg.train.init_checkpoint = "model_final.pth"
        predictor = DefaultPredictor(cfg)
        instances = predictor(cv2.imread("P0706.png"))  # Instances(pred_boxes, scores, ...)

    Args:
        cfg: a LazyConfig (see :func:`build_test_augmentations`, :func:`config_input_format`).
        image_format: channel order of the images passed to :meth:`__call__` ("BGR" as returned
            by ``cv2.imread``, or "RGB").
    """

    def __init__(self, cfg: Any, image_format: str = "BGR"):
        from rotated_det.config import instantiate

        from .model_ema import load_inference_weights

        self.cfg = cfg
        self.model = instantiate(cfg.model)
        self.model.eval()
        device = select(cfg, "train.device") or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(device)
        self.device = torch.device(device)
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
        self.augmentations = build_test_augmentations(cfg)
        self.image_format = image_format.upper()
        self.input_format = config_input_format(cfg, self.model)
        for fmt in (self.image_format, self.input_format):
            if fmt not in ("BGR", "RGB"):
                raise ValueError(f"DefaultPredictor supports BGR or RGB images, got {fmt!r}")

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

    def __call__(self, original_image: np.ndarray):
        """Detect on one image.

        Args:
            original_image: (H, W, 3) uint8 array in ``image_format`` channel order; uint16 is
                converted by ``value >> 8`` (the full 16-bit range to 0-255); float images are
                refused, their range ([0, 1] or [0, 255]) being ambiguous.

        Returns:
            Instances of size (H, W): ``pred_boxes`` (RotatedBoxes in the image's pixels),
            ``scores``, ``pred_classes``.
        """
        inputs = self.preprocess(original_image)
        with torch.no_grad():
            return self.model([inputs])[0]["instances"]
