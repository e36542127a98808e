"""DefaultPredictor: config -> model + weights + test-time resize + channel order -> Instances
in the original image's pixels."""

import logging

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from script_loading import load_script
from torch import nn

from rotated_det.config import LazyCall as L
from rotated_det.data.image_input import ImageInputError
from rotated_det.data.transforms import ResizeShortestEdge
from rotated_det.engine.predictor import DefaultPredictor
from rotated_det.structures import Instances, RotatedBoxes, poly_to_rbox, rbox_to_poly


class ChannelBlobDetector(nn.Module):
    """One detection per connected blob of channel ``channel`` > 128: its minimum-area rectangle
    (pixel extents), scaled from the input size to (height, width) like a real detector's
    postprocess. The score is the learnable ``score`` parameter (so a checkpoint shows).
    Records the shapes of the images it receives."""

    def __init__(self, channel: int = 2, input_format: str = "BGR"):
        super().__init__()
        self.channel = channel
        self.input_format = input_format
        self.score = nn.Parameter(torch.zeros(()))
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, batched_inputs):
        outs = []
        for d in batched_inputs:
            img = d["image"]
            self.shapes.append(tuple(img.shape))
            mask = (img[self.channel] > 128).cpu().numpy().astype(np.uint8)
            n, labels = cv2.connectedComponents(mask)
            boxes = []
            for k in range(1, n):
                ys, xs = np.nonzero(labels == k)
                pts = np.concatenate(
                    [np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)]
                ).astype(np.float32)
                poly = cv2.boxPoints(cv2.minAreaRect(pts)).reshape(1, 8)
                boxes.append(poly_to_rbox(torch.from_numpy(poly).double())[0].float())
            h, w = img.shape[1:]
            b = torch.stack(boxes) if boxes else torch.zeros(0, 5)
            rb = RotatedBoxes(b)
            rb.scale(d["width"] / w, d["height"] / h)
            inst = Instances((d["height"], d["width"]))
            inst.pred_boxes = rb
            inst.scores = self.score.detach().expand(len(b)).clone()
            inst.pred_classes = torch.full((len(b),), 3, dtype=torch.int64)
            outs.append({"instances": inst})
        return outs


def corners(box):
    return rbox_to_poly(torch.tensor([box], dtype=torch.float64))[0].numpy().reshape(4, 2)


def same_rect(a, b, tol):
    d = np.linalg.norm(corners(a)[:, None] - corners(b)[None], axis=-1).min(axis=1)
    return d.max() <= tol


def scene(box=(230.0, 140.0, 150.0, 50.0, 25.0)):
    """A 300 x 500 BGR image with one red (channel 2) rotated rectangle."""
    img = np.zeros((300, 500, 3), np.uint8)
    img[..., 1] = 60
    poly = corners(box) - 0.5
    cv2.fillPoly(img, [np.round(poly * 16).astype(np.int32)], (0, 0, 255), shift=4)
    return img, box


def make_cfg(tmp_path, channel=2, input_format="BGR", score=0.75, augs=True):
    model = ChannelBlobDetector(channel, input_format)
    with torch.no_grad():
        model.score.fill_(score)
    ckpt = tmp_path / "model.pth"
    torch.save({"model": model.state_dict()}, ckpt)
    cfg = OmegaConf.create()
    cfg.model = L(ChannelBlobDetector)(channel=channel, input_format=input_format)
    cfg.train = dict(init_checkpoint=str(ckpt), device="cpu")
    if augs:
        cfg.dataloader = dict(
            test=dict(
                mapper=dict(
                    augmentations=[L(ResizeShortestEdge)(short_edge_length=600, max_size=1000)]
                )
            )
        )
    return cfg


def test_predictor_resizes_loads_weights_and_returns_image_pixels(tmp_path):
    img, box = scene()
    pred = DefaultPredictor(make_cfg(tmp_path))
    out = pred(img)
    # 300x500 -> short side 600 would make the long side 1000 = max_size: (600, 1000).
    assert pred.model.shapes == [(3, 600, 1000)]
    assert isinstance(out, Instances) and out.image_size == (300, 500)
    assert len(out) == 1
    # Rasterising a rotated rectangle widens its pixel-extent rectangle by up to ~1 px per side.
    assert same_rect(out.pred_boxes.tensor[0].tolist(), box, tol=2.0)
    assert torch.allclose(out.pred_boxes.tensor[0, :2], torch.tensor(box[:2]), atol=0.5)
    # The score is the checkpoint's value, not the constructor's 0.
    assert float(out.scores[0]) == pytest.approx(0.75)
    assert int(out.pred_classes[0]) == 3

    # Reference: the same steps by hand (cv2 bilinear resize, model, scale back).
    ref_model = ChannelBlobDetector()
    ref_model.load_state_dict(torch.load(tmp_path / "model.pth")["model"])
    resized = cv2.resize(img, (1000, 600), interpolation=cv2.INTER_LINEAR)
    ref = ref_model(
        [
            {
                "image": torch.from_numpy(resized.transpose(2, 0, 1).astype(np.float32)),
                "height": 300,
                "width": 500,
            }
        ]
    )[0]["instances"]
    torch.testing.assert_close(out.pred_boxes.tensor, ref.pred_boxes.tensor)


def test_predictor_converts_channel_order(tmp_path):
    img, box = scene()
    # The model reads RGB and looks for red in its channel 0; the caller passes BGR.
    pred = DefaultPredictor(make_cfg(tmp_path, channel=0, input_format="RGB", augs=False))
    assert pred.input_format == "RGB"
    out = pred(img)
    assert pred.model.shapes == [(3, 300, 500)]
    assert len(out) == 1 and same_rect(out.pred_boxes.tensor[0].tolist(), box, tol=2.0)
    # An RGB caller with the same pixels (flipped) gets the same result.
    pred_rgb = DefaultPredictor(
        make_cfg(tmp_path, channel=0, input_format="RGB", augs=False), image_format="RGB"
    )
    out_rgb = pred_rgb(np.ascontiguousarray(img[:, :, ::-1]))
    torch.testing.assert_close(out_rgb.pred_boxes.tensor, out.pred_boxes.tensor)
    # A model reading BGR channel 0 (blue) sees nothing in the red object.
    pred_blue = DefaultPredictor(make_cfg(tmp_path, channel=0, input_format="BGR", augs=False))
    assert len(pred_blue(img)) == 0


def test_predictor_warnings_and_errors(tmp_path, caplog):
    cfg = make_cfg(tmp_path, augs=False)
    cfg.train.init_checkpoint = ""
    with caplog.at_level(logging.WARNING):
        pred = DefaultPredictor(cfg)
    text = caplog.text
    assert "init_checkpoint is empty" in text
    assert "without the test-time resize" in text
    img, _ = scene()
    assert float(pred(img).scores[0]) == 0.0  # random (constructor) weights
    with pytest.raises(ImageInputError, match=r"\(H, W, 3\) image in BGR order, got shape"):
        pred(img[:, :, 0])
    with pytest.raises(ValueError, match="BGR or RGB"):
        DefaultPredictor(make_cfg(tmp_path), image_format="GRAY")


def test_predictor_converts_uint16_by_keeping_the_high_byte(tmp_path, caplog):
    img, box = scene()
    pred = DefaultPredictor(make_cfg(tmp_path))
    ref = pred(img)
    assert len(ref) == 1
    # The documented rule is value >> 8: any low byte maps back to the uint8 image exactly
    # (dividing by 257 and rounding would not: 255 * 256 + 0 -> 254).
    low = np.random.default_rng(0).integers(0, 256, img.shape, dtype=np.uint16)
    img16 = (img.astype(np.uint16) << 8) | low
    out = pred(img16)
    for a, b in ((out.pred_boxes.tensor, ref.pred_boxes.tensor), (out.scores, ref.scores)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.equal(out.pred_classes, ref.pred_classes)
    assert pred.model.shapes == [(3, 600, 1000)] * 2
    # a 12-bit image would come out nearly black: said in a warning
    with caplog.at_level(logging.WARNING):
        pred(np.full((30, 40, 3), 4095, np.uint16))
    assert "uint16 image with maximum 4095" in caplog.text and "img >> 4" in caplog.text


@pytest.mark.parametrize(
    "image, message",
    [
        (
            np.zeros((30, 40, 3), np.float32),
            "DefaultPredictor does not take float32 images: a float image may hold values in "
            "[0, 1] or in [0, 255] and the array cannot tell which; convert it to uint8 first: "
            "(img * 255).round().clip(0, 255).astype(np.uint8) if its values lie in [0, 1], "
            "img.round().clip(0, 255).astype(np.uint8) if they lie in [0, 255]. (Expected an "
            "(H, W, 3) uint8 or uint16 image in BGR order.)",
        ),
        (np.zeros((30, 40, 3), np.float64), "does not take float64 images"),
        (
            np.zeros((30, 40, 3), np.int32),
            "int32 images: expected an (H, W, 3) uint8",
        ),
        (np.zeros((30, 40, 3), bool), "does not take bool images"),
        (np.zeros((30, 40), np.uint8), "got shape (30, 40) (a gray image: cv2.cvtColor"),
        (np.zeros((30, 40, 1), np.uint8), "got shape (30, 40, 1) (a gray image"),
        (np.zeros((30, 40, 4), np.uint8), "cv2.COLOR_BGRA2BGR"),
        (np.zeros((3, 30, 40), np.uint8), "got shape (3, 30, 40) (channels first?"),
        (np.zeros((0, 40, 3), np.uint8), "got shape (0, 40, 3)"),
        (torch.zeros(30, 40, 3, dtype=torch.uint8), "got Tensor (a torch tensor: pass"),
    ],
    ids=lambda v: getattr(v, "dtype", None) and f"{v.dtype}{tuple(v.shape)}",
)
def test_predictor_refuses_ambiguous_dtypes_and_shapes(tmp_path, image, message):
    pred = DefaultPredictor(make_cfg(tmp_path))
    with pytest.raises(ImageInputError) as e:
        pred(image)
    assert message in str(e.value)
    assert pred.model.shapes == []  # refused at the door, before the model


def _load_demo():
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "..", "demo", "demo.py")
    return load_script(path)


def test_demo_writes_drawings_json_and_dota_text(tmp_path):
    """demo/demo.py end to end on two scenes, plain and --huge, with a known detector."""
    import json
    import os

    boxes = [(120.0, 90.0, 80.0, 30.0, 35.0), (330.0, 200.0, 60.0, 24.0, -20.0)]
    img = np.zeros((300, 500, 3), np.uint8)
    for b in boxes:
        poly = corners(b) - 0.5
        cv2.fillPoly(img, [np.round(poly * 16).astype(np.int32)], (0, 0, 255), shift=4)
    inputs = tmp_path / "in"
    inputs.mkdir()
    cv2.imwrite(str(inputs / "scene_a.png"), img)
    cv2.imwrite(str(inputs / "scene_b.png"), img[:, ::-1])
    model = ChannelBlobDetector()
    with torch.no_grad():
        model.score.fill_(0.75)
    torch.save({"model": model.state_dict()}, tmp_path / "w.pth")
    config = tmp_path / "demo_config.py"
    config.write_text(
        "import sys\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
        "from rotated_det.config import LazyCall as L\n"
        "from test_predictor import ChannelBlobDetector\n"
        "model = L(ChannelBlobDetector)(channel=2)\n"
        f"train = dict(init_checkpoint={str(tmp_path / 'w.pth')!r}, device='cpu')\n"
    )
    demo = _load_demo()
    for huge, out in ((False, tmp_path / "out"), (True, tmp_path / "out_huge")):
        argv = ["--config-file", str(config), "--input", str(inputs), "--output", str(out)]
        argv += ["--confidence-threshold", "0.5"]
        if huge:
            argv += ["--huge", "--patch-size", "160", "--overlap", "100"]
        summary = demo.main(argv)
        assert [s["detections"] for s in summary] == [2, 2]
        rec = json.loads((out / "scene_a.json").read_text())
        assert (rec["height"], rec["width"]) == (300, 500)
        got = [r["bbox"] for r in rec["instances"]]
        for b in boxes:
            assert sum(same_rect(g, b, tol=3.0) for g in got) == 1, (b, got)
        for r in rec["instances"]:
            assert r["category_id"] == 3 and r["score"] == pytest.approx(0.75)
            np.testing.assert_allclose(
                np.array(r["poly"]).reshape(4, 2), corners(r["bbox"]), atol=0.01
            )
        lines = (out / "dota" / "scene_a.txt").read_text().splitlines()
        assert len(lines) == 2
        for line, r in zip(lines, rec["instances"]):
            parts = line.split()
            assert len(parts) == 10 and parts[8] == r["category"] == "class3"
            np.testing.assert_allclose([float(v) for v in parts[:8]], r["poly"], atol=0.01)
        drawn = cv2.imread(str(out / "scene_a.png"))
        assert drawn.shape == img.shape and (drawn != img).any()
        assert not (out / "task1").exists()  # no class names known: no Task1 files
    # A threshold above every score keeps nothing.
    out = tmp_path / "out_none"
    demo.main(
        [
            "--config-file",
            str(config),
            "--input",
            str(inputs / "scene_a.png"),
            "--output",
            str(out),
            "--confidence-threshold",
            "0.8",
        ]
    )
    assert json.loads((out / "scene_a.json").read_text())["instances"] == []
    with pytest.raises(FileNotFoundError, match="no image found"):
        demo.main(
            ["--config-file", str(config), "--input", str(tmp_path / "*.tif"), "--output", str(out)]
        )


# Batches: a list of images in one call


def _sized_scene(height, width, box):
    img = np.zeros((height, width, 3), np.uint8)
    poly = corners(box) - 0.5
    cv2.fillPoly(img, [np.round(poly * 16).astype(np.int32)], (0, 0, 255), shift=4)
    return img


def _record_batch_sizes(model):
    sizes = []
    model.register_forward_pre_hook(lambda m, args: sizes.append(len(args[0])))
    return sizes


def test_predictor_runs_a_list_in_batches_of_equal_sizes_in_the_lists_order(tmp_path):
    """Images of one size share a model call (at most batch_size per call); each comes back in
    its own pixels and in its place in the list, as it would alone."""
    shapes = [(300, 500), (200, 240), (300, 500), (300, 500), (200, 240)]
    boxes = [(60.0 + 30 * i, 100.0, 70.0, 24.0, 15.0 * i - 30) for i in range(len(shapes))]
    images = [_sized_scene(h, w, b) for (h, w), b in zip(shapes, boxes)]
    pred = DefaultPredictor(make_cfg(tmp_path), batch_size=2)
    calls = _record_batch_sizes(pred.model)
    outs = pred(images)
    # 300x500 (3 images) -> calls of 2 and 1; 200x240 (2 images) -> one call of 2
    assert calls == [2, 1, 2]
    assert isinstance(outs, list) and len(outs) == len(images)
    for out, (h, w), box in zip(outs, shapes, boxes):
        assert isinstance(out, Instances) and out.image_size == (h, w)
        assert len(out) == 1 and same_rect(out.pred_boxes.tensor[0].tolist(), box, tol=2.0)
    singles = [pred(img) for img in images]
    for out, single in zip(outs, singles):
        torch.testing.assert_close(out.pred_boxes.tensor, single.pred_boxes.tensor)
    # a tuple is a batch too, and a list of one image gives a list of one Instances
    assert len(pred(tuple(images[:2]))) == 2
    assert [len(o) for o in pred(images[:1])] == [1]


def test_predictor_list_errors_name_the_image_and_come_before_the_model(tmp_path):
    img, _ = scene()
    pred = DefaultPredictor(make_cfg(tmp_path))
    with pytest.raises(ValueError, match="empty list of images"):
        pred([])
    bad = img.astype(np.float32) / 255
    with pytest.raises(ImageInputError) as e:
        pred([img, img, bad])
    assert "(image 2 of a list of 3) does not take float32 images" in str(e.value)
    assert "(img * 255).round()" in str(e.value)  # how to convert
    with pytest.raises(ImageInputError, match=r"image 1 of a list of 2\) takes an \(H, W, 3\)"):
        pred([img, img[:, :, 0]])
    assert pred.model.shapes == []  # nothing reached the model
    for bad_size in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
            DefaultPredictor(make_cfg(tmp_path), batch_size=bad_size)


# Precision


class AutocastProbe(nn.Module):
    """Scores each image by a linear layer of its mean colour (a bfloat16 result under CPU
    autocast) and returns them and a box in whatever dtype autocast gave; records whether
    autocast was on."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.autocast_seen: list[bool] = []

    def forward(self, batched_inputs):
        self.autocast_seen.append(torch.is_autocast_enabled("cpu"))
        outs = []
        for d in batched_inputs:
            mean = d["image"].mean(dim=(1, 2)) / 255
            score = torch.sigmoid(self.linear(mean[None]))[:, 0]
            inst = Instances((d["height"], d["width"]))
            box = torch.cat([torch.tensor([10.0, 20.0, 8.0, 4.0]).to(score.dtype), score * 90])
            inst.pred_boxes = RotatedBoxes(box[None])
            inst.scores = score
            inst.pred_classes = torch.zeros(1, dtype=torch.int64)
            outs.append({"instances": inst})
        return outs


def _probe_cfg():
    cfg = OmegaConf.create()
    cfg.model = L(AutocastProbe)()
    cfg.train = dict(init_checkpoint="", device="cpu")
    return cfg


def test_bfloat16_precision_runs_under_autocast_and_returns_float32():
    img = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    torch.manual_seed(0)
    f32 = DefaultPredictor(_probe_cfg())
    torch.manual_seed(0)
    bf16 = DefaultPredictor(_probe_cfg(), precision="bfloat16")
    ref = f32(img)
    assert ref.scores.bfloat16().float() != ref.scores  # float32's score needs > 8 bits
    for out in (bf16(img), *bf16([img, img])):
        assert out.scores.dtype == out.pred_boxes.tensor.dtype == torch.float32
        # the values are bfloat16's (8 significant bits), widened, not a float32 recomputation
        for values in (out.scores, out.pred_boxes.tensor):
            assert torch.equal(values.bfloat16().float(), values)
        # within a few bfloat16 steps (inputs, weights and output each rounded)
        assert float(out.scores[0]) == pytest.approx(float(ref.scores[0]), rel=4 * 2**-8)
    assert f32.model.autocast_seen == [False]
    assert bf16.model.autocast_seen == [True, True]
    assert not torch.is_autocast_enabled("cpu")  # restored after each call
    with bf16.autocast():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_precision_errors_name_the_option_and_the_device(tmp_path):
    with pytest.raises(ValueError, match=r"precision must be one of \['bfloat16', 'float16'"):
        DefaultPredictor(_probe_cfg(), precision="half")
    with pytest.raises(ValueError, match="'float16' runs on CUDA only .* use precision='bfloat16'"):
        DefaultPredictor(_probe_cfg(), precision="float16")
    cfg = _probe_cfg()
    cfg.train.device = "meta"
    with pytest.raises(ValueError, match="supported on CPU and CUDA devices only, not on 'meta'"):
        DefaultPredictor(cfg, precision="bfloat16")
