from .oriented_rcnn import OrientedRCNN
from .preprocessing import detector_postprocess, preprocess_image
from .rcnn import GeneralizedRCNN
from .retinanet import RotatedRetinaNet, RotatedRetinaNetHead

__all__ = [
    "GeneralizedRCNN",
    "OrientedRCNN",
    "RotatedRetinaNet",
    "RotatedRetinaNetHead",
    "detector_postprocess",
    "preprocess_image",
]
