from .fcos import RotatedFCOS
from .gliding_vertex import GlidingVertex
from .h2rbox_v2 import H2RBoxV2
from .oriented_rcnn import OrientedRCNN
from .preprocessing import DetectorBase, detector_postprocess, preprocess_image
from .r3det import R3Det
from .rcnn import GeneralizedRCNN
from .reppoints import RotatedRepPoints
from .retinanet import RotatedRetinaNet, RotatedRetinaNetHead
from .roi_transformer import RoITransformer
from .rtmdet import RotatedRTMDet
from .s2anet import S2ANet

__all__ = [
    "DetectorBase",
    "GeneralizedRCNN",
    "GlidingVertex",
    "H2RBoxV2",
    "OrientedRCNN",
    "R3Det",
    "RoITransformer",
    "RotatedFCOS",
    "RotatedRepPoints",
    "RotatedRetinaNet",
    "RotatedRetinaNetHead",
    "RotatedRTMDet",
    "S2ANet",
    "detector_postprocess",
    "preprocess_image",
]
