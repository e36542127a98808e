from .fcos import RotatedFCOS
from .h2rbox_v2 import H2RBoxV2
from .oriented_rcnn import OrientedRCNN
from .preprocessing import DetectorBase, detector_postprocess, preprocess_image
from .rcnn import GeneralizedRCNN
from .retinanet import RotatedRetinaNet, RotatedRetinaNetHead

__all__ = [
    "DetectorBase",
    "GeneralizedRCNN",
    "H2RBoxV2",
    "OrientedRCNN",
    "RotatedFCOS",
    "RotatedRetinaNet",
    "RotatedRetinaNetHead",
    "detector_postprocess",
    "preprocess_image",
]
