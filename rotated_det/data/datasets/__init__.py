"""Dataset loaders and the builtin dataset registrations. (The DOTA label format, its class lists
and the patch-name convention live in :mod:`rotated_det.structures`, below the evaluation that
reads them too; they are re-exported here.)"""

from rotated_det.structures.dota_format import (
    DOTA_V1_CLASSES,
    DOTA_V2_CLASSES,
    DOTA_V15_CLASSES,
    parse_dota_label_file,
)
from rotated_det.structures.dota_patch_name import (
    format_patch_name,
    is_patch_name,
    parse_patch_name,
)

from . import builtin as _builtin  # noqa: F401, I001  (registers the builtin datasets)
from .coco_polygons import load_coco_polygon_json, register_coco_polygon_instances
from .coco_rotated import (
    convert_to_coco_rotated_dict,
    convert_to_coco_rotated_json,
    load_coco_rotated_json,
    register_coco_rotated_instances,
)
from .dota import load_dota_instances, register_dota_instances
from .fair1m import (
    FAIR1M_CLASSES,
    convert_fair1m_to_dota,
    load_fair1m_instances,
    parse_fair1m_xml,
    register_fair1m_instances,
)
from .hrsc import HRSC_FINE_CLASSES, load_hrsc_instances, register_hrsc_instances
from .labelme import load_labelme_instances, register_labelme_instances
from .rolabelimg import load_rolabelimg_instances, register_rolabelimg_instances
from .synthetic import SYNTHETIC_CLASSES, generate_synthetic_dataset
from .voc_rotated import (
    DIOR_R_CLASSES,
    VOC_ROTATED_SCHEMAS,
    VocRotatedSchema,
    load_voc_rotated_instances,
    parse_voc_rotated_xml,
    register_voc_rotated_instances,
)
from .yolo_obb import load_yolo_obb_instances, register_yolo_obb_instances

__all__ = [
    "DOTA_V1_CLASSES",
    "DOTA_V2_CLASSES",
    "DOTA_V15_CLASSES",
    "load_dota_instances",
    "parse_dota_label_file",
    "register_dota_instances",
    "format_patch_name",
    "is_patch_name",
    "parse_patch_name",
    "HRSC_FINE_CLASSES",
    "load_hrsc_instances",
    "register_hrsc_instances",
    "SYNTHETIC_CLASSES",
    "generate_synthetic_dataset",
    "load_yolo_obb_instances",
    "register_yolo_obb_instances",
    "convert_to_coco_rotated_dict",
    "convert_to_coco_rotated_json",
    "load_coco_rotated_json",
    "register_coco_rotated_instances",
    "DIOR_R_CLASSES",
    "VOC_ROTATED_SCHEMAS",
    "VocRotatedSchema",
    "load_voc_rotated_instances",
    "parse_voc_rotated_xml",
    "register_voc_rotated_instances",
    "FAIR1M_CLASSES",
    "convert_fair1m_to_dota",
    "load_fair1m_instances",
    "parse_fair1m_xml",
    "register_fair1m_instances",
    "load_coco_polygon_json",
    "register_coco_polygon_instances",
    "load_labelme_instances",
    "register_labelme_instances",
    "load_rolabelimg_instances",
    "register_rolabelimg_instances",
]
