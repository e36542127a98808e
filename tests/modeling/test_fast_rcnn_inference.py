import torch

from rotated_det.modeling.roi_heads import fast_rcnn_inference_rotated


def _inputs():
    a = [50.0, 50, 20, 10, 0]
    a_shift = [51.0, 50, 20, 10, 0]  # IoU ~0.9 with a
    far = [150.0, 150, 20, 10, 30]
    c = [100.0, 30, 16, 8, -60]
    boxes = torch.tensor([a + a, a_shift + far, a + c])  # [R=3, K * 5], K = 2
    scores = torch.tensor([[0.9, 0.6, 0.0], [0.8, 0.03, 0.17], [0.04, 0.07, 0.89]])
    return boxes, scores


def test_threshold_per_class_nms_and_order():
    boxes, scores = _inputs()
    (res,), (roi_idx,) = fast_rcnn_inference_rotated(
        [boxes], [scores], [(200, 200)], score_thresh=0.05, nms_thresh=0.5, topk_per_image=-1
    )
    # class 0: a (0.9) suppresses a_shift (0.8); class 1: a (0.6) and c (0.07) do not overlap;
    # the class-1 box of RoI 1 scores 0.03 < 0.05; box a is kept in both classes (NMS per class)
    torch.testing.assert_close(res.scores, torch.tensor([0.9, 0.6, 0.07]))
    assert res.pred_classes.tolist() == [0, 1, 1]
    assert roi_idx.tolist() == [0, 0, 2]
    torch.testing.assert_close(res.pred_boxes.tensor[2], boxes[2, 5:])
    assert res.image_size == (200, 200)


def test_topk_and_empty():
    boxes, scores = _inputs()
    (res,), _ = fast_rcnn_inference_rotated(
        [boxes], [scores], [(200, 200)], score_thresh=0.05, nms_thresh=0.5, topk_per_image=2
    )
    assert res.pred_classes.tolist() == [0, 1] and len(res) == 2
    (res,), (idx,) = fast_rcnn_inference_rotated(
        [boxes[:0]],
        [scores[:0]],
        [(200, 200)],
        score_thresh=0.05,
        nms_thresh=0.5,
        topk_per_image=100,
    )
    assert len(res) == 0 and res.pred_boxes.tensor.shape == (0, 5) and idx.numel() == 0
