"""A small traceable rotated detector for export tests (random weights, deterministic seed).

It follows the model I/O convention and calls the compiled ops the real detectors call:
``roi_align_rotated`` (re-scoring of candidate boxes) and ``batched_nms_rotated``. Image sizes
are taken from tensor shapes (traced, not constants), so a trace generalises across resolutions
unless ``static_shapes=True``, which makes it bake the traced size in (as a detector that reads
sizes as Python ints would).
"""

import torch
from torch import nn

from rotated_det.layers import ROIAlignRotated, batched_nms_rotated
from rotated_det.structures import Instances, RotatedBoxes


class TinyRotatedDetector(nn.Module):
    input_format = "BGR"

    def __init__(self, num_classes: int = 3, topk: int = 60, static_shapes: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.cls = nn.Conv2d(16, num_classes, 1)
        self.box = nn.Conv2d(16, 5, 1)
        self.pool = ROIAlignRotated((3, 3), spatial_scale=1 / 8, sampling_ratio=2)
        self.rescore = nn.Linear(16 * 9, 1)
        self.register_buffer("pixel_mean", torch.tensor([103.5, 116.3, 123.7]).view(3, 1, 1))
        self.num_classes = num_classes
        self.topk = topk
        self.static_shapes = static_shapes

    def forward(self, batched_inputs):
        outs = []
        for x in batched_inputs:
            img = (x["image"].float() - self.pixel_mean) / 58.0
            feat = self.stem(img[None])
            logits, deltas = self.cls(feat)[0], self.box(feat)[0]
            k, fh, fw = logits.shape
            if self.static_shapes:
                fh, fw = int(fh), int(fw)
            scores, idx = logits.sigmoid().reshape(-1).topk(self.topk)
            classes = idx // (fh * fw)
            cell = idx % (fh * fw)
            ys = torch.div(cell, fw, rounding_mode="floor").float()
            xs = (cell % fw).float()
            d = deltas.reshape(5, -1)[:, cell]
            boxes = torch.stack(
                [
                    (xs + 0.5 + d[0].tanh()) * 8,
                    (ys + 0.5 + d[1].tanh()) * 8,
                    24 * d[2].clamp(-2, 2).exp(),
                    12 * d[3].clamp(-2, 2).exp(),
                    60 * d[4].tanh(),
                ],
                dim=1,
            )
            rois = torch.cat([boxes.new_zeros(len(boxes), 1), boxes], dim=1)
            pooled = self.pool(feat, rois).flatten(1)
            scores = scores * self.rescore(pooled).sigmoid()[:, 0]
            keep = batched_nms_rotated(boxes, scores, classes, 0.3)
            h, w = img.shape[1:]
            inst = Instances((h, w))
            rb = RotatedBoxes(boxes[keep])
            if "height" in x:
                rb.scale(x["width"] / w, x["height"] / h)
            inst.pred_boxes = rb
            inst.scores = scores[keep]
            inst.pred_classes = classes[keep]
            outs.append({"instances": inst})
        return outs
