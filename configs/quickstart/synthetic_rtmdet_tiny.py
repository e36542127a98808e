# Rotated RTMDet-tiny (CSPNeXt, from scratch) on the synthetic dataset with the quickstart recipe
# (_synthetic_recipe.py): `python dev/quickstart.py --config-file <this file>`; its figures are in
# dev/zoo.py's table. The model is MMRotate's tiny definition as it is (4.9 M parameters, BN),
# with candidate / detection limits for scenes of < 100 objects.
from ..common.models.rotated_rtmdet import rotated_rtmdet_model
from ._synthetic_recipe import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

model = rotated_rtmdet_model("tiny", num_classes=NUM_CLASSES)
model.test_topk_candidates = 1000
model.max_detections_per_image = 300

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]
