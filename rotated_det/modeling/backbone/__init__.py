from .backbone import Backbone
from .fpn import FPN, LastLevelMaxPool, LastLevelP6P7
from .resnet import BasicBlock, BasicStem, BottleneckBlock, ResNet, build_resnet_backbone
from .weight_conversion import WeightLoadReport, load_resnet_weights

__all__ = [
    "Backbone",
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "FPN",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "ResNet",
    "WeightLoadReport",
    "build_resnet_backbone",
    "load_resnet_weights",
]
