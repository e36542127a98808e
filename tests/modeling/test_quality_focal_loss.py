"""Quality focal loss: the worked example of its docstring, the special cases, and MMDetection's
(label, score) formulation written out here as the reference."""

import math

import pytest
import torch
from torch.nn import functional as F

from rotated_det.modeling.losses import quality_focal_loss, sigmoid_focal_loss


def _reference(logits, labels, scores, beta):
    """QFL as MMDetection states it: every class is a negative (target 0, scale p ** beta)
    except each positive's own class, whose target is its score."""
    p = logits.sigmoid()
    loss = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    loss = loss * p.pow(beta)
    for i, (c, s) in enumerate(zip(labels.tolist(), scores.tolist())):
        if c < logits.shape[1]:
            x = logits[i, c]
            loss[i, c] = F.binary_cross_entropy_with_logits(x, torch.tensor(s, dtype=x.dtype)) * (
                abs(s - p[i, c].item()) ** beta
            )
    return loss


def test_worked_example():
    loss = quality_focal_loss(torch.tensor([0.0]), torch.tensor([0.25]), beta=2.0)
    assert loss.item() == pytest.approx(math.log(2) / 16, rel=1e-6)  # 0.0433217


def test_matches_label_score_formulation():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 4, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, 5, (50,), generator=g)  # 4: background
    scores = torch.rand(50, generator=g, dtype=torch.float64)
    targets = torch.zeros_like(logits)
    fg = labels < 4
    targets[fg.nonzero()[:, 0], labels[fg]] = scores[fg]
    for beta in (1.0, 2.0):
        expected = _reference(logits, labels, scores, beta)
        torch.testing.assert_close(quality_focal_loss(logits, targets, beta), expected)
    assert quality_focal_loss(logits, targets, reduction="sum").item() == pytest.approx(
        _reference(logits, labels, scores, 2.0).sum().item()
    )


def test_hard_targets_give_focal_loss_without_alpha():
    """With 0 / 1 targets, |t - p| is 1 - p_t: the focal loss with gamma = beta, no alpha."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(20, 3, generator=g)
    targets = (torch.rand(20, 3, generator=g) > 0.7).float()
    torch.testing.assert_close(
        quality_focal_loss(logits, targets, 2.0),
        sigmoid_focal_loss(logits, targets, alpha=-1, gamma=2.0),
    )


def test_minimum_at_the_target_and_gradient_sign():
    """For a soft target the loss is smallest where the probability equals it."""
    t = torch.tensor(0.7)
    xs = torch.linspace(-3, 3, 601)
    losses = quality_focal_loss(xs, t.expand_as(xs))
    best = xs[losses.argmin()]
    assert best.sigmoid().item() == pytest.approx(0.7, abs=0.01)
    x = torch.tensor([0.0], requires_grad=True)  # p = 0.5 < 0.7: the loss pulls p up
    quality_focal_loss(x, torch.tensor([0.7])).sum().backward()
    assert x.grad is not None and x.grad.item() < 0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="same shape"):
        quality_focal_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="reduction"):
        quality_focal_loss(torch.zeros(2), torch.zeros(2), reduction="avg")
