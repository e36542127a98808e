"""Detectors and their building blocks."""

from .anchor_generator import DefaultAnchorGenerator, RotatedAnchorGenerator
from .angle_coders import AngleCoder, CSLCoder, PSCCoder, RegressionAngleCoder
from .assigners import (
    DynamicSoftLabelAssigner,
    RotatedATSSAssigner,
    RotatedCenterSamplingAssigner,
)
from .backbone import (
    CSPNEXT_SIZES,
    FPN,
    Backbone,
    BasicBlock,
    BasicStem,
    BottleneckBlock,
    CSPNeXt,
    CSPNeXtPAFPN,
    LastLevelMaxPool,
    LastLevelP6P7,
    ResNet,
    TimmBackbone,
    build_resnet_backbone,
)
from .box_coders import DistanceAnglePointCoder, GlidingVertexCoder
from .box_regression import Box2BoxTransform, Box2BoxTransformRotated, MidpointOffsetCoder
from .config_checks import ModelConfigError, check_model_config
from .dense_heads import FeatureRefineModule, RotatedFCOSHead, RotatedRTMDetHead, S2ANetHead
from .losses import gwd_loss, kld_loss, quality_focal_loss, sigmoid_focal_loss, smooth_l1_loss
from .matcher import Matcher
from .meta_arch import (
    GeneralizedRCNN,
    GlidingVertex,
    H2RBoxV2,
    OrientedRCNN,
    R3Det,
    RoITransformer,
    RotatedFCOS,
    RotatedRetinaNet,
    RotatedRetinaNetHead,
    RotatedRTMDet,
    S2ANet,
    detector_postprocess,
)
from .point_generator import PointGenerator
from .poolers import ROIPooler
from .proposal_generator import RPN, RRPN, OrientedRPN, StandardRPNHead
from .roi_heads import (
    FastRCNNConvFCHead,
    GlidingVertexOutputLayers,
    RoITransformerROIHeads,
    RotatedFastRCNNOutputLayers,
    RotatedRoIPredictor,
    RROIHeads,
)
from .sampling import subsample_labels

__all__ = [
    "AngleCoder",
    "CSPNEXT_SIZES",
    "CSPNeXt",
    "CSPNeXtPAFPN",
    "DynamicSoftLabelAssigner",
    "RotatedRTMDet",
    "RotatedRTMDetHead",
    "quality_focal_loss",
    "RotatedATSSAssigner",
    "RotatedCenterSamplingAssigner",
    "RotatedFCOS",
    "RotatedFCOSHead",
    "CSLCoder",
    "DistanceAnglePointCoder",
    "PSCCoder",
    "PointGenerator",
    "RegressionAngleCoder",
    "Backbone",
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "Box2BoxTransform",
    "Box2BoxTransformRotated",
    "DefaultAnchorGenerator",
    "FPN",
    "FastRCNNConvFCHead",
    "FeatureRefineModule",
    "GeneralizedRCNN",
    "GlidingVertex",
    "GlidingVertexCoder",
    "GlidingVertexOutputLayers",
    "H2RBoxV2",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "Matcher",
    "MidpointOffsetCoder",
    "ModelConfigError",
    "OrientedRCNN",
    "OrientedRPN",
    "R3Det",
    "RPN",
    "RoITransformer",
    "RoITransformerROIHeads",
    "ROIPooler",
    "RROIHeads",
    "RRPN",
    "ResNet",
    "RotatedAnchorGenerator",
    "RotatedFastRCNNOutputLayers",
    "RotatedRoIPredictor",
    "RotatedRetinaNet",
    "RotatedRetinaNetHead",
    "S2ANet",
    "S2ANetHead",
    "StandardRPNHead",
    "TimmBackbone",
    "build_resnet_backbone",
    "check_model_config",
    "detector_postprocess",
    "gwd_loss",
    "kld_loss",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "subsample_labels",
]
