"""Small variants of the repository's detectors for export tests: the model configs of
configs/common/models with a ResNet-18 trunk and few candidates, random weights (seeded)."""

import os

import torch

from rotated_det.config import LazyConfig, instantiate

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_TWO_STAGE = [
    "model.backbone.bottom_up.stages.depth=18",
    "model.proposal_generator.pre_nms_topk=[300,300]",
    "model.proposal_generator.post_nms_topk=[100,100]",
    "model.roi_heads.box_head.fc_dims=[256,256]",
    "model.roi_heads.box_predictor.input_shape.channels=256",
    "model.roi_heads.box_predictor.test_topk_per_image=100",
]

_ONE_STAGE = [
    "model.backbone.bottom_up.stages.depth=18",
    "model.backbone.top_block.in_channels=512",
    "model.backbone.out_channels=64",
    "model.backbone.top_block.out_channels=64",
    "model.head.in_channels=64",
    "model.head.conv_dims=[64]",
    "model.test_topk_candidates=200",
    "model.max_detections_per_image=100",
]
# FCOS's P6 is computed from P5 (64 channels here), not from C5; its scores are class
# probability x centerness, about 0.01 x 0.5 with random weights: below the 0.05 default
_FCOS = [o for o in _ONE_STAGE if "top_block.in_channels" not in o] + [
    "model.backbone.top_block.in_channels=64",
    "model.test_score_thresh=0.003",
]
# S2A-Net's classifiers start at the 0.01 prior, below the 0.05 default
_S2ANET = _ONE_STAGE + ["model.test_score_thresh=0.005"]
# R3Det detects with its refinement head, which also starts at the 0.01 prior
_R3DET = _ONE_STAGE + ["model.test_score_thresh=0.005"]
# Rotated RepPoints (the inference graph of the whole point-set family): classifiers at the
# 0.01 prior
_REPPOINTS = _ONE_STAGE + ["model.test_score_thresh=0.005"]
# Rotated RTMDet: the tiny definition as it is (CSPNeXt, no ResNet), classifiers at the 0.01 prior
_RTMDET = [
    "model.test_topk_candidates=200",
    "model.max_detections_per_image=100",
    "model.test_score_thresh=0.005",
]

# RoI Transformer's RRoI learner has a box head and predictor of its own
_ROI_TRANSFORMER = _TWO_STAGE + [
    "model.roi_heads.rroi_learner.box_head.fc_dims=[256,256]",
    "model.roi_heads.rroi_learner.box_predictor.input_shape.channels=256",
]

SMALL_DETECTORS = {
    "rotated_retinanet": _ONE_STAGE,
    "rotated_atss": _ONE_STAGE,
    "rotated_retinanet_csl": _ONE_STAGE,
    "rotated_retinanet_psc": _ONE_STAGE,
    "rotated_fcos": _FCOS,
    "rotated_fcos_psc": _FCOS,
    "h2rbox_v2": _FCOS,
    "r3det": _R3DET,
    "s2anet": _S2ANET,
    "rotated_reppoints": _REPPOINTS,
    "rotated_rtmdet": _RTMDET,
    "rotated_faster_rcnn": _TWO_STAGE,
    "oriented_rcnn": _TWO_STAGE,
    "roi_transformer": _ROI_TRANSFORMER,
    "gliding_vertex": _TWO_STAGE,
}


def config_path(name: str) -> str:
    return os.path.join(REPO, "configs", "common", "models", f"{name}.py")


def build_small_detector(name: str) -> torch.nn.Module:
    cfg = LazyConfig.load(config_path(name))
    cfg = LazyConfig.apply_overrides(cfg, SMALL_DETECTORS[name])
    torch.manual_seed(0)
    return instantiate(cfg.model).eval()
