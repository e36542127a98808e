"""Instances: fields, length checks, indexing, cat, to, repr (Detectron2 semantics)."""

import pytest
import torch

from rotated_det.structures import Instances, RotatedBoxes


def make(n=3, size=(20, 30)):
    boxes = RotatedBoxes(torch.arange(n * 5, dtype=torch.float32).view(n, 5))
    return Instances(
        size,
        gt_boxes=boxes,
        gt_classes=torch.arange(n),
        names=[f"obj{i}" for i in range(n)],
    )


def test_fields_set_get_has_remove():
    inst = make()
    assert inst.image_size == (20, 30) and len(inst) == 3
    assert inst.has("gt_classes") and not inst.has("scores")
    inst.scores = torch.tensor([0.5, 0.1, 0.9])
    assert inst.get("scores") is inst.scores and inst.has("scores")
    assert set(inst.get_fields()) == {"gt_boxes", "gt_classes", "names", "scores"}
    inst.remove("scores")
    assert not inst.has("scores")
    with pytest.raises(AttributeError, match="Cannot find field 'scores'"):
        _ = inst.scores
    with pytest.raises(KeyError):
        inst.remove("scores")
    # private attributes are not fields
    inst._private = 1
    assert "_private" not in inst.get_fields()


def test_length_mismatch_raises():
    inst = make()
    with pytest.raises(ValueError, match="length 2 to Instances of length 3"):
        inst.scores = torch.zeros(2)
    with pytest.raises(ValueError, match="length"):
        Instances((5, 5), a=torch.zeros(3), b=[1, 2])
    with pytest.raises(NotImplementedError, match="Empty Instances"):
        len(Instances((5, 5)))
    with pytest.raises(NotImplementedError, match="not iterable"):
        iter(inst)


def test_indexing():
    inst = make(4)
    one = inst[1]
    assert isinstance(one, Instances) and len(one) == 1
    assert one.gt_classes.tolist() == [1] and one.names == ["obj1"]
    assert one.gt_boxes.tensor.tolist() == [[5, 6, 7, 8, 9]]
    assert inst[-1].gt_classes.tolist() == [3] and inst[-1].names == ["obj3"]
    with pytest.raises(IndexError):
        inst[4]
    with pytest.raises(IndexError):
        inst[-5]
    inst.remove("names")  # a list field takes int and slice indices only (as in Detectron2)
    keep = inst[inst.gt_classes % 2 == 0]
    assert keep.gt_classes.tolist() == [0, 2] and keep.gt_boxes.tensor[:, 0].tolist() == [0, 10]
    sub = inst[torch.tensor([3, 0])]
    assert sub.gt_classes.tolist() == [3, 0]
    assert inst[1:3].gt_classes.tolist() == [1, 2] and inst[1:3].image_size == inst.image_size
    assert make(4)[1:3].names == ["obj1", "obj2"]


def test_cat_and_to():
    a, b = make(2), make(3)
    c = Instances.cat([a, b])
    assert len(c) == 5 and isinstance(c.gt_boxes, RotatedBoxes)
    assert c.gt_classes.tolist() == [0, 1, 0, 1, 2]
    assert c.names == ["obj0", "obj1", "obj0", "obj1", "obj2"]
    assert Instances.cat([a]) is a
    with pytest.raises(ValueError, match="image sizes differ"):
        Instances.cat([a, make(2, size=(5, 5))])
    with pytest.raises(ValueError, match="non-empty"):
        Instances.cat([])
    a2 = make(2)
    a2.extra = {1: 2, 3: 4}  # a dict has len() but no cat
    b2 = make(1)
    b2.extra = {5: 6}
    with pytest.raises(ValueError, match="unsupported type"):
        Instances.cat([a2, b2])

    moved = a.to("cpu")
    assert moved is not a and moved.gt_classes.device.type == "cpu" and moved.names == a.names
    half = a.to(torch.float64)  # tensors and RotatedBoxes follow .to(); lists are kept
    assert half.gt_classes.dtype == torch.float64


def test_repr():
    s = repr(make(2))
    assert s.startswith("Instances(num_instances=2, image_height=20, image_width=30, fields=[")
    assert "gt_boxes: RotatedBoxes(" in s and "gt_classes: tensor([0, 1])" in s


@pytest.mark.slow
def test_torch_export_with_data_dependent_rows():
    """A masked selection (like NMS output) has a data-dependent number of rows under
    torch.export: RotatedBoxes and Instances accept it, and the length check becomes a runtime
    assertion of the program."""

    class Select(torch.nn.Module):
        def forward(self, boxes, scores, other):
            keep = torch.nonzero(scores > 0.5)[:, 0]
            inst = Instances((100, 120), pred_boxes=RotatedBoxes(boxes[keep]))
            inst.scores = scores[keep]
            inst.other = other[other > 0.5]  # an unrelated count: must equal at run time
            return inst.pred_boxes.tensor, inst.scores

    boxes = torch.arange(20, dtype=torch.float32).view(4, 5)
    scores = torch.tensor([0.9, 0.1, 0.7, 0.6])
    other = torch.tensor([0.8, 0.9, 0.2, 0.7])
    ep = torch.export.export(
        Select(),
        (boxes, scores, other),
        dynamic_shapes=({0: torch.export.Dim("N")}, {0: torch.export.Dim("N")}, None),
    )
    got_boxes, got_scores = ep.module()(boxes, scores, other)
    assert torch.equal(got_boxes, boxes[[0, 2, 3]]) and torch.equal(got_scores, scores[[0, 2, 3]])
    with pytest.raises(RuntimeError, match="Runtime assertion failed"):
        ep.module()(boxes, scores, torch.tensor([0.8, 0.1, 0.2, 0.1]))
    # eager: the same mismatch is a ValueError
    with pytest.raises(ValueError, match="adding field 'other' of length 1"):
        Select()(boxes, scores, torch.tensor([0.8, 0.1, 0.2, 0.1]))
