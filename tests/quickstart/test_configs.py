"""The quickstart's own configs load, agree with their datasets and build a model that runs."""

import os

import pytest
import torch

from rotated_det.config import LazyConfig, instantiate
from rotated_det.data import MetadataCatalog
from rotated_det.modeling import (
    GeneralizedRCNN,
    RotatedFCOS,
    RotatedRetinaNet,
    S2ANet,
    check_model_config,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = {
    "synthetic_quickstart.py": 6,
    "dota_p0706_rotated_faster_rcnn_R_18_FPN.py": 1,
    "synthetic_atss.py": 6,
    "synthetic_retinanet_csl.py": 6,
    "synthetic_retinanet_psc.py": 6,
    "synthetic_fcos.py": 6,
    "synthetic_fcos_psc.py": 6,
    "synthetic_h2rbox_v2.py": 6,
    "synthetic_s2anet.py": 6,
    "synthetic_roi_transformer.py": 6,
    "synthetic_gliding_vertex.py": 6,
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_builds_and_matches_dataset(name):
    cfg = LazyConfig.load(os.path.join(REPO, "configs", "quickstart", name))
    classes = MetadataCatalog.get(cfg.dataloader.train.dataset.names).thing_classes
    assert len(classes) == CONFIGS[name]
    check_model_config(cfg.model, thing_classes=classes)
    assert cfg.train.device == "cpu" and cfg.train.eval_period == 0
    # the lr schedule follows train.max_iter (so `train.max_iter=N` shortens the whole schedule)
    short = LazyConfig.apply_overrides(cfg, ["train.max_iter=50"])
    assert short.lr_multiplier.max_iter == 50
    assert cfg.dataloader.evaluator.merge_patches is True
    model = instantiate(cfg.model)
    assert isinstance(model, (GeneralizedRCNN, RotatedRetinaNet, RotatedFCOS, S2ANet))
    assert sum(p.numel() for p in model.backbone.bottom_up.parameters()) < 12e6  # ResNet-18
    if isinstance(model, GeneralizedRCNN):
        # the RPN head predicts one objectness per configured anchor (sizes x ratios x angles;
        # horizontal anchors have no angles)
        ag = cfg.model.proposal_generator.anchor_generator
        assert model.proposal_generator.anchor_generator.num_cell_anchors[0] == (
            len(ag.aspect_ratios) * len(ag.get("angles", [0.0]))
        )
        assert (
            model.proposal_generator.rpn_head.objectness_logits.out_channels
            == (model.proposal_generator.anchor_generator.num_cell_anchors[0])
        )
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.zeros(3, 64, 64), "height": 64, "width": 64}])
    assert len(out) == 1 and out[0]["instances"].pred_boxes.tensor.shape[1] == 5
