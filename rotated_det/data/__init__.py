"""Datasets, catalogs, mapping, augmentation, samplers and loaders."""

from . import detection_utils, samplers, transforms  # noqa: F401
from .build import (
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from .cached_mixup import CachedMixUp
from .cached_mosaic import CachedMosaic
from .catalog import DatasetCatalog, Metadata, MetadataCatalog
from .common import DatasetFromList, MapDataset
from .dataset_mapper import DatasetMapper
from .datasets import (
    DOTA_V1_CLASSES,
    DOTA_V2_CLASSES,
    DOTA_V15_CLASSES,
    HRSC_FINE_CLASSES,
    SYNTHETIC_CLASSES,
    convert_to_coco_rotated_json,
    format_patch_name,
    generate_synthetic_dataset,
    load_coco_rotated_json,
    load_dota_instances,
    load_hrsc_instances,
    load_yolo_obb_instances,
    parse_patch_name,
    register_coco_rotated_instances,
    register_dota_instances,
    register_hrsc_instances,
    register_yolo_obb_instances,
)
from .train_loader import TrainBatchStream, TrainDataLoader

__all__ = [
    "detection_utils",
    "samplers",
    "transforms",
    "build_detection_test_loader",
    "build_detection_train_loader",
    "get_detection_dataset_dicts",
    "DatasetFromList",
    "MapDataset",
    "TrainBatchStream",
    "TrainDataLoader",
    "DatasetMapper",
    "CachedMosaic",
    "CachedMixUp",
    "DatasetCatalog",
    "Metadata",
    "MetadataCatalog",
    "DOTA_V1_CLASSES",
    "DOTA_V2_CLASSES",
    "DOTA_V15_CLASSES",
    "HRSC_FINE_CLASSES",
    "SYNTHETIC_CLASSES",
    "format_patch_name",
    "generate_synthetic_dataset",
    "load_dota_instances",
    "load_hrsc_instances",
    "load_yolo_obb_instances",
    "parse_patch_name",
    "register_dota_instances",
    "register_hrsc_instances",
    "register_yolo_obb_instances",
    "convert_to_coco_rotated_json",
    "load_coco_rotated_json",
    "register_coco_rotated_instances",
]
