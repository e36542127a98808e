import math

import torch

from rotated_det.modeling import gwd_loss, kld_loss, sigmoid_focal_loss, smooth_l1_loss


def test_focal_loss_hand_worked():
    x = torch.zeros(2)
    t = torch.tensor([1.0, 0.0])
    loss = sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0)
    # p = 0.5: CE = ln 2, (1 - p_t)**2 = 1/4; alpha 0.25 for the positive, 0.75 for the negative
    torch.testing.assert_close(loss, torch.tensor([0.25, 0.75]) * 0.25 * math.log(2))
    # gamma 0, alpha < 0 is plain BCE
    torch.testing.assert_close(
        sigmoid_focal_loss(torch.tensor([2.0]), torch.tensor([1.0]), alpha=-1, gamma=0.0),
        torch.tensor([math.log(1 + math.exp(-2))]),
    )


def test_smooth_l1_hand_worked():
    x = torch.tensor([0.0, 0.0, 0.0])
    t = torch.tensor([0.05, 1.0, -2.0])
    torch.testing.assert_close(
        smooth_l1_loss(x, t, beta=0.1), torch.tensor([0.5 * 0.0025 / 0.1, 0.95, 1.95])
    )
    torch.testing.assert_close(smooth_l1_loss(x, t, beta=0.0), t.abs())


def test_kld_hand_worked_and_representation_invariant():
    target = torch.tensor([[10.0, 10, 4, 2, 0]])
    pred = torch.tensor([[12.0, 10, 4, 2, 0]])
    # Sigma = diag(4, 1): KLD = 0.5 * (tr(I) + 2**2 / 4 - 2 + 0) = 0.5
    expected = 1 - 1 / (1 + math.log1p(0.5))
    torch.testing.assert_close(kld_loss(pred, target), torch.tensor([expected]))
    # the same rectangles written differently give the same loss; identical boxes give 0
    pred_alt = torch.tensor([[12.0, 10, 2, 4, 90]])
    torch.testing.assert_close(
        kld_loss(pred_alt, target), torch.tensor([expected]), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        kld_loss(target, torch.tensor([[10.0, 10, 4, 2, 180]])), torch.zeros(1), atol=1e-5, rtol=0
    )


def test_gwd_hand_worked():
    target = torch.tensor([[0.0, 0, 4, 4, 0]])
    pred = torch.tensor([[3.0, 0, 4, 4, 30]])
    # equal isotropic Gaussians: W2 = |dmu|**2 = 9; normalised by w * h / 4 = 4
    expected = 1 - 1 / (1 + math.log1p(9 / 4))
    torch.testing.assert_close(gwd_loss(pred, target), torch.tensor([expected]), atol=1e-5, rtol=0)
    # pure size change of a centred box: W2 = sum of squared half-side differences
    p2 = torch.tensor([[0.0, 0, 8, 4, 0]])
    expected2 = 1 - 1 / (1 + math.log1p(((4 - 2) ** 2) / 4))
    torch.testing.assert_close(gwd_loss(p2, target), torch.tensor([expected2]), atol=1e-5, rtol=0)


def test_gaussian_losses_have_gradients():
    pred = torch.tensor([[10.0, 11, 5, 3, 20]], requires_grad=True)
    target = torch.tensor([[10.0, 10, 4, 2, 0]])
    (kld_loss(pred, target) + gwd_loss(pred, target)).sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
