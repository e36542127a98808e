from .backbone import Backbone
from .cspnext import CSPNEXT_SIZES, CSPNeXt
from .cspnext_pafpn import CSPNeXtPAFPN
from .fpn import FPN, LastLevelMaxPool, LastLevelP6P7
from .resnet import BasicBlock, BasicStem, BottleneckBlock, ResNet, build_resnet_backbone
from .timm_backbone import TimmBackbone

__all__ = [
    "Backbone",
    "CSPNEXT_SIZES",
    "CSPNeXt",
    "CSPNeXtPAFPN",
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "FPN",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "ResNet",
    "TimmBackbone",
    "build_resnet_backbone",
]
