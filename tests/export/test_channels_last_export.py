"""torch.export of a model with channels-last weights (DefaultPredictor's default on a CPU):
the export takes a copy with contiguous weights, since channels-last ones made torch.export
guard the feature maps' strides on the image width and the dynamic-size export fall back to the
sample's size (Rotated RetinaNet, R3Det, SASM). The caller's model keeps its layout."""

from modeling._helpers import build_small_model, make_batch

from rotated_det.export import export_torch_export
from rotated_det.layers import to_channels_last


def test_channels_last_model_exports_with_dynamic_size():
    model = build_small_model("rotated_retinanet").eval()
    to_channels_last(model)
    image = make_batch(256, with_gt=False)[0]["image"]
    result = export_torch_export(model, image, check_images=[])
    assert result.dynamic_resolution, result.message
    weights = [p for p in model.parameters() if p.dim() == 4 and p.shape[2:] != (1, 1)]
    assert weights and all(not w.is_contiguous() for w in weights)
