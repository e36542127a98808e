"""Shared helpers of the modeling tests: tiny scenes drawn with cv2 and small model configs."""

import importlib.util
import os

import cv2
import numpy as np
import torch

from rotated_det.config import LazyConfig, instantiate
from rotated_det.structures import Instances, RotatedBoxes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_CONFIGS = os.path.join(REPO, "configs", "common", "models")

# The model definitions of configs/common/models, by kind (one list for every detector test).
TWO_STAGE = ("rotated_faster_rcnn", "oriented_rcnn", "roi_transformer", "gliding_vertex")
ONE_STAGE = (
    "rotated_retinanet",
    "rotated_atss",
    "rotated_retinanet_csl",
    "rotated_retinanet_psc",
    "rotated_fcos",
    "rotated_fcos_psc",
    "h2rbox_v2",
    "rotated_rtmdet",
    "r3det",
    "s2anet",
    "rotated_reppoints",
    "oriented_reppoints",
    "cfa",
    "sasm",
)
DETECTORS = TWO_STAGE + ONE_STAGE
# Detectors that train from horizontal boxes (the model converts rotated labels itself): the
# overfit test's rotated-IoU criterion does not apply (test_h2rbox_v2_overfit.py has theirs).
HORIZONTAL_LABEL_DETECTORS = ("h2rbox_v2",)
ROTATED_LABEL_DETECTORS = tuple(d for d in DETECTORS if d not in HORIZONTAL_LABEL_DETECTORS)
# Detectors defined small already (the tiny Rotated RTMDet, CSPNeXt): tests use their definition
# as it is instead of a ResNet-18 shrink.
SMALL_DEFINITIONS = ("rotated_rtmdet",)
# The point-set detectors (RepPoints family) are tested with RepPoints' own gradient_mul 0.1
# (MMRotate's configs: 0.3): at 0.3 the classification and refinement gradients that reach the
# initial points through the deformable convolutions slow their AdamW overfit of the two test
# images (seed 0: best IoU 0.54-0.79 after 150 iterations; at 0.1: 0.78-0.89).
POINT_SET_DETECTORS = ("rotated_reppoints", "oriented_reppoints", "cfa", "sasm")
POINT_SET_TEST_GRADIENT_MUL = 0.1


def is_one_stage(name: str) -> bool:
    """A dense detector (score threshold and class count on the model, no RoI heads)."""
    return name in ONE_STAGE


# BGR fill colour of each class: the class is visible in the pixels.
CLASS_COLORS = ((40, 40, 220), (40, 200, 40), (220, 60, 40))


def rbox_polygon(box) -> np.ndarray:
    """Corners (4, 2) of a rotated box (cx, cy, w, h, angle_deg) in the project convention."""
    cx, cy, w, h, a = box
    rad = np.deg2rad(a)
    u = np.array([np.cos(rad), -np.sin(rad)]) * w / 2
    v = np.array([np.sin(rad), np.cos(rad)]) * h / 2
    c = np.array([cx, cy])
    return np.stack([c + u + v, c - u + v, c - u - v, c + u - v])


def draw_scene(size: int, boxes, classes, seed: int) -> np.ndarray:
    """A ``size`` x ``size`` BGR uint8 image: grey noise with filled rotated rectangles."""
    rng = np.random.default_rng(seed)
    img = rng.integers(90, 130, size=(size, size, 3), dtype=np.uint8)
    for box, cls in zip(boxes, classes):
        pts = np.round(rbox_polygon(box) * 16).astype(np.int32)
        cv2.fillPoly(img, [pts], CLASS_COLORS[cls], lineType=cv2.LINE_AA, shift=4)
    return img


SCENES = [
    ([(80, 90, 90, 40, 30), (180, 170, 70, 30, -50), (190, 60, 50, 50, 10)], [0, 1, 2]),
    ([(120, 120, 110, 36, -75), (60, 200, 60, 28, 0), (200, 200, 44, 70, 60)], [2, 0, 1]),
]


def make_batch(size: int = 128, with_gt: bool = True) -> list[dict]:
    """Two fixed images with three objects each, as model inputs (CHW float, BGR).

    ``SCENES`` are laid out for 256 px; other sizes scale centers and sides.
    """
    batch = []
    for i, (boxes, classes) in enumerate(SCENES):
        k = size / 256
        boxes = [(cx * k, cy * k, w * k, h * k, a) for cx, cy, w, h, a in boxes]
        img = draw_scene(size, boxes, classes, seed=i)
        d = {"image": torch.from_numpy(img).permute(2, 0, 1).float(), "height": size, "width": size}
        if with_gt:
            d["instances"] = Instances(
                (size, size),
                gt_boxes=RotatedBoxes(torch.tensor(boxes, dtype=torch.float32)),
                gt_classes=torch.tensor(classes, dtype=torch.int64),
            )
        batch.append(d)
    return batch


def _load_config_module(path: str):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_model_cfg(name: str, num_classes: int = 3):
    """The common model config ``name`` shrunk for CPU tests with configs' ``resnet18_model``
    (ResNet-18, trainable BN, 64-channel FPN)."""
    cfg = LazyConfig.load(os.path.join(MODEL_CONFIGS, f"{name}.py")).model
    if name in SMALL_DEFINITIONS:
        cfg.num_classes = num_classes
        return cfg
    shrink = _load_config_module(os.path.join(MODEL_CONFIGS, "resnet18.py")).resnet18_model
    cfg = shrink(cfg, fpn_channels=64, norm="BN", fc_dim=256)
    if is_one_stage(name):
        cfg.num_classes = num_classes
        cfg.head.conv_dims = [64, 64]
        if name in POINT_SET_DETECTORS:
            cfg.head.gradient_mul = POINT_SET_TEST_GRADIENT_MUL
        if "square_classes" in cfg:  # H2RBox-v2: DOTA's class indices do not apply
            cfg.square_classes = []
            cfg.square_class_scales = []
    else:
        cfg.roi_heads.num_classes = num_classes
        cfg.roi_heads.batch_size_per_image = 128
        if "rroi_learner" in cfg.roi_heads:  # RoI Transformer's first stage
            cfg.roi_heads.rroi_learner.batch_size_per_image = 128
        cfg.proposal_generator.post_nms_topk = (300, 300)
    return cfg


def build_small_model(name: str, num_classes: int = 3):
    torch.manual_seed(0)
    model = instantiate(small_model_cfg(name, num_classes))
    if name in SMALL_DEFINITIONS:
        calibrate_batch_norms(model)
    return model


@torch.no_grad()
def calibrate_batch_norms(model) -> None:
    """Set every BatchNorm's running statistics to those of one drawn batch (a training-mode
    pass of the backbone and head). With the initial statistics (mean 0, variance 1) an untrained
    CSPNeXt in eval mode scales its activations down layer after layer until every class logit
    is the bias alone: all scores are 0.01 exactly, and no threshold can pick some of them."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: exactly this batch's statistics
    was_training = model.training
    model.train()
    model.head_outputs(model.preprocess_image(make_batch(256, with_gt=False)).tensor)
    for m in norms:
        m.momentum = 0.1
    model.train(was_training)


class single_thread:
    """Run torch with one intra-op thread inside the block (restored afterwards).

    On a small shared CPU, OpenMP worker threads that spin while other processes hold the cores
    slow convolutions down several-fold; one thread is both faster and steadier there.
    """

    def __enter__(self):
        self._n = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self._n)
        return False
