from .backbone import Backbone
from .fpn import FPN, LastLevelMaxPool, LastLevelP6P7
from .resnet import BasicBlock, BasicStem, BottleneckBlock, ResNet, build_resnet_backbone
from .timm_backbone import TimmBackbone

__all__ = [
    "Backbone",
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
