from .fcos import RotatedFCOS
from .oriented_rcnn import OrientedRCNN
from .preprocessing import DetectorBase, detector_postprocess, preprocess_image
from .rcnn import GeneralizedRCNN
from .retinanet import RotatedRetinaNet, RotatedRetinaNetHead

__all__ = [
    "DetectorBase",
    "GeneralizedRCNN",
    "OrientedRCNN",
    "RotatedFCOS",
    "RotatedRetinaNet",
    "RotatedRetinaNetHead",
    "detector_postprocess",
    "preprocess_image",
]
