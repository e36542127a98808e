"""Datasets, catalogs, mapping, augmentation, samplers and loaders."""

from .catalog import DatasetCatalog, Metadata, MetadataCatalog
from .datasets import (
    DOTA_V1_CLASSES,
    DOTA_V2_CLASSES,
    DOTA_V15_CLASSES,
    HRSC_FINE_CLASSES,
    SYNTHETIC_CLASSES,
    format_patch_name,
    generate_synthetic_dataset,
    load_dota_instances,
    load_hrsc_instances,
    load_yolo_obb_instances,
    parse_patch_name,
    register_dota_instances,
    register_hrsc_instances,
    register_yolo_obb_instances,
)

__all__ = [
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
]
