"""Matcher: assigns each prediction (anchor / proposal) to a ground-truth box by IoU.

``Matcher.__call__`` takes a dense ``[G, P]`` quality matrix. ``Matcher.match_boxes`` gives the
same result from the boxes themselves without that matrix: in a crowded image (DOTA v2, SAR:
5,000 objects) against Rotated Faster R-CNN's ~1.6M anchors at 1024 px (5 FPN levels x 18 anchors
per location) the dense float32 matrix would take 5,000 x 1.57M x 4 B = 31 GB.
"""

from collections.abc import Iterator
from typing import TypeVar

import torch

from rotated_det.layers import box_iou_rotated
from rotated_det.layers.wrappers import nonzero_tuple
from rotated_det.structures import Boxes, pairwise_iou

__all__ = ["Matcher", "DEFAULT_MAX_PAIRS_PER_CHUNK"]

# Candidate (ground truth, prediction) pairs examined at once by ``Matcher.match_boxes``. Each pair
# costs about 70 bytes of temporaries (indices, float64 centre distances, the gathered boxes), so a
# chunk peaks near 150 MB; the running per-prediction state adds ~30 bytes per prediction.
DEFAULT_MAX_PAIRS_PER_CHUNK = 2**21

# Bounding-circle tests are made a little looser than the kernel's own (relative + absolute, in
# pixels) so that rounding never drops a pair the IoU kernel would count.
_REL_SLACK = 1e-6
_ABS_SLACK = 1e-3
# A radius: one number, or a tensor of them.
_RadiusT = TypeVar("_RadiusT", torch.Tensor, float)


class Matcher:
    """Match predictions to ground truth from a ``[G, P]`` quality matrix (usually IoU).

    Each prediction gets the ground truth of highest quality (the lowest index among equals), and
    a label from the interval its quality falls in: with ``thresholds=[0.3, 0.7]`` and
    ``labels=[0, -1, 1]``, quality < 0.3 is 0 (background), [0.3, 0.7) is -1 (ignored) and
    >= 0.7 is 1 (foreground).

    Args:
        thresholds: increasing thresholds splitting [0, 1] into ``len(thresholds) + 1`` intervals.
        labels: one label per interval, each in {-1, 0, 1}.
        allow_low_quality_matches: also label as 1 the predictions that are the best match of some
            ground truth (ties included), even below the top threshold.
        max_pairs_per_chunk: memory budget of ``match_boxes``: candidate pairs examined at once
            (see ``DEFAULT_MAX_PAIRS_PER_CHUNK``); below ``G * P <= max_pairs_per_chunk`` it
            builds the dense matrix.
    """

    def __init__(
        self,
        thresholds: list[float],
        labels: list[int],
        allow_low_quality_matches: bool = False,
        max_pairs_per_chunk: int = DEFAULT_MAX_PAIRS_PER_CHUNK,
    ):
        thresholds = [float(t) for t in thresholds]
        if any(a > b for a, b in zip(thresholds[:-1], thresholds[1:])):
            raise ValueError(f"Matcher thresholds must be increasing, got {thresholds}")
        if thresholds and thresholds[0] < 0:
            raise ValueError(f"Matcher thresholds must be >= 0, got {thresholds}")
        if len(labels) != len(thresholds) + 1:
            raise ValueError(
                f"Matcher needs len(labels) == len(thresholds) + 1, got {len(labels)} labels for "
                f"{len(thresholds)} thresholds"
            )
        if any(label not in (-1, 0, 1) for label in labels):
            raise ValueError(f"Matcher labels must be in {{-1, 0, 1}}, got {labels}")
        if int(max_pairs_per_chunk) < 1:
            raise ValueError(f"Matcher max_pairs_per_chunk must be >= 1, got {max_pairs_per_chunk}")
        self.thresholds = [-float("inf")] + thresholds + [float("inf")]
        self.labels = list(labels)
        self.allow_low_quality_matches = allow_low_quality_matches
        self.max_pairs_per_chunk = int(max_pairs_per_chunk)

    def __call__(self, match_quality_matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            match_quality_matrix: ``[G, P]`` quality of ground truth g with prediction p.

        Returns:
            matches: ``[P]`` int64 index of the matched ground truth (0 when G == 0).
            match_labels: ``[P]`` int8 label of each prediction.
        """
        if match_quality_matrix.dim() != 2:
            raise ValueError(
                f"Matcher takes a [G, P] matrix, got {tuple(match_quality_matrix.shape)}"
            )
        num_gt, num_pred = match_quality_matrix.shape
        device = match_quality_matrix.device
        if num_gt == 0 or num_pred == 0:
            return self._no_ground_truth(num_pred, device)
        matched_vals, matches = match_quality_matrix.max(dim=0)
        match_labels = self._labels_of(matched_vals)
        if self.allow_low_quality_matches:
            self._set_low_quality_matches(match_labels, match_quality_matrix)
        return matches, match_labels

    def match_boxes(
        self, gt_boxes: torch.Tensor, pred_boxes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Match by IoU without building the ``[G, P]`` matrix when it exceeds the budget.

        The result equals ``self(pairwise_iou(gt_boxes, pred_boxes))`` exactly, with
        ``pairwise_iou_rotated`` for rotated boxes and ``structures.pairwise_iou`` for
        horizontal ones. Only pairs whose bounding circles meet are evaluated (the IoU of the
        others is 0): predictions are bucketed by radius and sorted by (row of a grid, x) so that
        each ground truth finds its candidates by binary search; the candidates are processed in
        chunks of whole ground truths of at most ``max_pairs_per_chunk`` pairs (a single ground
        truth may exceed it, by at most P), keeping per prediction only the best IoU and its
        ground truth, and per chunk the best IoU of each of its ground truths.

        Args:
            gt_boxes: ``[G, 5]`` rotated (cx, cy, w, h, angle in degrees) or ``[G, 4]`` XYXY
                boxes, in pixels.
            pred_boxes: ``[P, 5]`` or ``[P, 4]`` boxes of the same kind, on the same device.

        Returns:
            matches ``[P]`` int64 and match_labels ``[P]`` int8, as ``__call__``.
        """
        box_dim = gt_boxes.shape[-1]
        if (
            gt_boxes.dim() != 2
            or box_dim not in (4, 5)
            or pred_boxes.dim() != 2
            or pred_boxes.shape[-1] != box_dim
        ):
            raise ValueError(
                "Matcher.match_boxes takes [G, 5] and [P, 5] (rotated) or [G, 4] and [P, 4] "
                f"(XYXY) boxes, got {tuple(gt_boxes.shape)} and {tuple(pred_boxes.shape)}"
            )
        num_gt, num_pred = gt_boxes.shape[0], pred_boxes.shape[0]
        if num_gt == 0:
            return self._no_ground_truth(num_pred, pred_boxes.device)
        if num_gt * num_pred <= self.max_pairs_per_chunk:
            return self(_dense_iou(gt_boxes, pred_boxes))
        dtype = torch.promote_types(gt_boxes.dtype, pred_boxes.dtype)
        state = _MatchState(
            num_gt, num_pred, dtype, pred_boxes.device, self.allow_low_quality_matches
        )
        chunks = _candidate_pairs(gt_boxes, pred_boxes, self.max_pairs_per_chunk)
        for gt_idx, pred_idx, paired_preds in chunks:
            iou = _paired_iou(gt_boxes.index_select(0, gt_idx), paired_preds)
            # Pairs of IoU 0 change nothing: keep the state updates small.
            keep = torch.nonzero(iou > 0)[:, 0]
            state.update(gt_idx[keep], pred_idx[keep], iou[keep])
        match_labels = self._labels_of(state.best_val)
        if self.allow_low_quality_matches:
            match_labels[state.low_quality_preds()] = 1
        return state.best_idx, match_labels

    def _no_ground_truth(
        self, num_pred: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        matches = torch.zeros(num_pred, dtype=torch.int64, device=device)
        labels = torch.full((num_pred,), self.labels[0], dtype=torch.int8, device=device)
        return matches, labels

    def _labels_of(self, matched_vals: torch.Tensor) -> torch.Tensor:
        """``[P]`` int8 label of the interval each best quality falls in."""
        match_labels = torch.empty(matched_vals.shape, dtype=torch.int8, device=matched_vals.device)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:]):
            in_range = (matched_vals >= low) & (matched_vals < high)
            match_labels[in_range] = label
        return match_labels

    @staticmethod
    def _set_low_quality_matches(match_labels: torch.Tensor, quality: torch.Tensor) -> None:
        best_per_gt, _ = quality.max(dim=1)
        # Ground truth that overlaps nothing (best 0) gives no low-quality match.
        best_per_gt = torch.where(best_per_gt > 0, best_per_gt, torch.full_like(best_per_gt, 2.0))
        _, pred_idx = nonzero_tuple(quality == best_per_gt[:, None])
        match_labels[pred_idx] = 1


def _dense_iou(gt_boxes: torch.Tensor, pred_boxes: torch.Tensor) -> torch.Tensor:
    """``[G, P]`` IoU, rotated (``[*, 5]``) or horizontal XYXY (``[*, 4]``)."""
    if gt_boxes.shape[-1] == 5:
        return box_iou_rotated(gt_boxes, pred_boxes)
    return pairwise_iou(Boxes(gt_boxes), Boxes(pred_boxes))


def _paired_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """``[K]`` IoU of ``boxes1[k]`` with ``boxes2[k]``, bit for bit the entries ``_dense_iou``
    gives those pairs (the same kernel, or the same float operations in the same order)."""
    if boxes1.shape[-1] == 5:
        return box_iou_rotated(boxes1, boxes2, aligned=True)
    area1, area2 = Boxes(boxes1).area(), Boxes(boxes2).area()
    wh = torch.min(boxes1[:, 2:], boxes2[:, 2:]) - torch.max(boxes1[:, :2], boxes2[:, :2])
    inter = wh.clamp(min=0).prod(dim=1)
    union = area1 + area2 - inter
    return torch.where(inter > 0, inter / torch.where(inter > 0, union, 1.0), 0.0)


class _MatchState:
    """What the Matcher needs of the ``[G, P]`` IoU, accumulated over chunks of pairs.

    Chunks must come in increasing ground-truth order, each holding all candidate pairs of its
    ground truths (so that a later chunk, holding larger indices, only wins a prediction with a
    strictly larger IoU, and each ground truth's best IoU is known within its chunk). Pairs not
    given have IoU 0; ``best_idx`` starts at 0 as ``max(dim=0)`` of an all-zero column gives.
    """

    def __init__(
        self,
        num_gt: int,
        num_pred: int,
        dtype: torch.dtype,
        device: torch.device,
        low_quality: bool,
    ):
        self.num_gt = num_gt
        self.best_val = torch.zeros(num_pred, dtype=dtype, device=device)
        self.best_idx = torch.zeros(num_pred, dtype=torch.int64, device=device)
        self._low_quality = low_quality
        self._low_quality_preds: list[torch.Tensor] = []

    def update(self, gt_idx: torch.Tensor, pred_idx: torch.Tensor, iou: torch.Tensor) -> None:
        """Fold in ``[K]`` pairs (ground truth, prediction) and their IoU."""
        if gt_idx.numel() == 0:
            return
        iou = iou.to(self.best_val.dtype)
        new_val = self.best_val.scatter_reduce(0, pred_idx, iou, "amax", include_self=True)
        # Pairs that strictly beat the previous best of their prediction; among those reaching
        # the new best, the lowest ground-truth index wins (as max(dim=0) does for ties).
        wins = (iou > self.best_val[pred_idx]) & (iou == new_val[pred_idx])
        first = torch.full_like(self.best_idx, self.num_gt)
        first.scatter_reduce_(0, pred_idx[wins], gt_idx[wins], "amin", include_self=True)
        changed = first < self.num_gt
        self.best_idx = torch.where(changed, first, self.best_idx)
        self.best_val = new_val
        if self._low_quality:
            g0 = int(gt_idx.min())
            local = gt_idx - g0
            best_gt = iou.new_zeros(int(local.max()) + 1)
            best_gt.scatter_reduce_(0, local, iou, "amax", include_self=True)
            best = best_gt[local]
            self._low_quality_preds.append(pred_idx[(best > 0) & (iou == best)])

    def low_quality_preds(self) -> torch.Tensor:
        """Predictions that reach the (non-zero) best IoU of some ground truth."""
        if not self._low_quality_preds:
            return self.best_idx.new_zeros(0)
        return torch.cat(self._low_quality_preds)


def _centres_and_radii(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """float64 ``[N]`` centre x, centre y and bounding-circle radius of rotated or XYXY boxes."""
    b = boxes.to(torch.float64)
    if boxes.shape[-1] == 5:
        return b[:, 0], b[:, 1], 0.5 * torch.hypot(b[:, 2], b[:, 3])
    cx = 0.5 * (b[:, 0] + b[:, 2])
    cy = 0.5 * (b[:, 1] + b[:, 3])
    return cx, cy, 0.5 * torch.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])


def _reach(r1: _RadiusT, r2: float) -> _RadiusT:
    """Centre distance below which circles of radii r1, r2 may meet, loosened for rounding."""
    return (r1 + r2) * (1 + _REL_SLACK) + _ABS_SLACK


def _arange_segments(counts: torch.Tensor, total: int) -> torch.Tensor:
    """``[total]`` position of each element within its segment, for segments of ``counts``."""
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(total, device=counts.device) - torch.repeat_interleave(
        starts, counts, output_size=total
    )


def _candidate_pairs(
    gt_boxes: torch.Tensor, pred_boxes: torch.Tensor, max_pairs: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield chunks of candidate pairs: ``gt_idx`` ``[K]``, ``pred_idx`` ``[K]`` and the
    predictions' boxes ``pred_boxes[pred_idx]`` ``[K, box_dim]``.

    The candidates are a superset of the pairs whose bounding circles meet (so of those with a
    non-zero IoU) and hold each such pair once. Chunks cover increasing, disjoint ranges of
    ground-truth indices, each ground truth wholly inside one chunk, and hold at most
    ``max_pairs`` pairs unless one ground truth alone has more.

    Predictions are bucketed by radius (powers of 2); within a bucket they are sorted by (grid
    row, x), rows being half a typical reach tall. A ground truth's candidates in a bucket are
    then one run of x per row its reach circle crosses, found by binary search, the run as wide
    as the circle's chord in that row.
    """
    device = pred_boxes.device
    gx, gy, gr = _centres_and_radii(gt_boxes)
    px, py, pr = _centres_and_radii(pred_boxes)
    # Boxes with a non-finite centre or size have IoU 0 with everything.
    gt_ids = torch.nonzero(torch.isfinite(gx) & torch.isfinite(gy) & torch.isfinite(gr))[:, 0]
    pred_ids = torch.nonzero(torch.isfinite(px) & torch.isfinite(py) & torch.isfinite(pr))[:, 0]
    if gt_ids.numel() == 0 or pred_ids.numel() == 0:
        return
    gx, gy, gr = gx[gt_ids], gy[gt_ids], gr[gt_ids]
    x0, y0 = float(px[pred_ids].min()), float(py[pred_ids].min())
    width = float(px[pred_ids].max()) - x0
    stride = width + 1.0  # key of a prediction: row * stride + (x - x0), with x - x0 in [0, width]
    typical_gt_r = float(gr.mean())
    bucket = torch.floor(torch.log2(pr[pred_ids].clamp(min=1e-6)))
    order_parts, runs = [], []
    offset = 0
    for b in torch.unique(bucket).tolist():
        members = pred_ids[bucket == b]
        max_r = float(pr[members].max())
        row_h = 0.5 * _reach(max_r, typical_gt_r)
        row = torch.floor((py[members] - y0) / row_h)
        num_rows = int(row.max()) + 1
        keys, perm = torch.sort(row * stride + (px[members] - x0))
        order_parts.append(members[perm])
        reach = _reach(gr, max_r) + _ABS_SLACK
        first_row = torch.floor((gy - reach - y0) / row_h).clamp(min=0)
        last_row = torch.floor((gy + reach - y0) / row_h).clamp(max=num_rows - 1)
        rows_per_gt = (last_row - first_row + 1).clamp(min=0).to(torch.int64)
        total = int(rows_per_gt.sum())
        if total > 0:
            sel = torch.repeat_interleave(
                torch.arange(gt_ids.numel(), device=device), rows_per_gt, output_size=total
            )
            run_row = first_row[sel] + _arange_segments(rows_per_gt, total)
            # Half chord of the reach circle over the row's y range (full reach in its own row).
            top = y0 + run_row * row_h
            dy = torch.maximum(top - gy[sel], gy[sel] - (top + row_h)).clamp(min=0)
            half = torch.sqrt((reach[sel].square() - dy.square()).clamp(min=0)) + _ABS_SLACK
            lo = torch.searchsorted(keys, run_row * stride + (gx[sel] - half - x0).clamp(0, width))
            hi = torch.searchsorted(
                keys, run_row * stride + (gx[sel] + half - x0).clamp(0, width), side="right"
            )
            runs.append((gt_ids[sel], lo + offset, hi - lo))
        offset += members.numel()
    if not runs:
        return
    order = torch.cat(order_parts)
    # Runs are contiguous in this copy: gathering from it reads memory in order.
    sorted_preds = pred_boxes.index_select(0, order)
    run_gt = torch.cat([r[0] for r in runs])
    run_start = torch.cat([r[1] for r in runs])
    run_count = torch.cat([r[2] for r in runs])
    nonempty = run_count > 0
    run_gt, perm = torch.sort(run_gt[nonempty], stable=True)
    run_start, run_count = run_start[nonempty][perm], run_count[nonempty][perm]
    per_gt = torch.zeros(gt_boxes.shape[0], dtype=torch.int64, device=device)
    per_gt.scatter_add_(0, run_gt, run_count)
    cum = torch.cumsum(per_gt, 0)
    num_gt, g_begin, done = gt_boxes.shape[0], 0, 0
    while g_begin < num_gt:
        # Whole ground truths, up to max_pairs pairs (at least one ground truth).
        g_end = int(torch.searchsorted(cum, done + max_pairs, right=True))
        g_end = min(max(g_end, g_begin + 1), num_gt)
        r_begin = int(torch.searchsorted(run_gt, g_begin))
        r_end = int(torch.searchsorted(run_gt, g_end))
        done = int(cum[g_end - 1])
        g_begin = g_end
        counts = run_count[r_begin:r_end]
        total = int(counts.sum()) if r_end > r_begin else 0
        if total == 0:
            continue
        gt_idx = torch.repeat_interleave(run_gt[r_begin:r_end], counts, output_size=total)
        pos = torch.repeat_interleave(run_start[r_begin:r_end], counts, output_size=total)
        pos += _arange_segments(counts, total)
        yield gt_idx, order.index_select(0, pos), sorted_preds.index_select(0, pos)
