import torch

from rotated_det.modeling import Matcher, subsample_labels


def test_matcher_hand_worked():
    q = torch.tensor([[0.1, 0.5, 0.8, 0.35], [0.2, 0.75, 0.1, 0.0]])
    m = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=False)
    idx, labels = m(q)
    assert idx.tolist() == [1, 1, 0, 0]
    assert labels.tolist() == [0, 1, 1, -1]


def test_matcher_low_quality_matches_include_ties():
    q = torch.tensor([[0.1, 0.4, 0.4, 0.0], [0.0, 0.0, 0.0, 0.0]])
    m = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)
    _, labels = m(q)
    # gt 0's best (0.4) is shared by predictions 1 and 2; gt 1 overlaps nothing and adds none.
    assert labels.tolist() == [0, 1, 1, 0]


def test_matcher_no_ground_truth():
    m = Matcher([0.5], [0, 1])
    idx, labels = m(torch.zeros(0, 5))
    assert idx.tolist() == [0] * 5 and labels.tolist() == [0] * 5


def test_matcher_bad_arguments():
    import pytest

    with pytest.raises(ValueError, match="increasing"):
        Matcher([0.7, 0.3], [0, -1, 1])
    with pytest.raises(ValueError, match="len\\(labels\\)"):
        Matcher([0.5], [0, -1, 1])


def test_subsample_labels_balance():
    torch.manual_seed(0)
    labels = torch.full((200,), -1)
    labels[:10] = 1
    labels[10:110] = 0
    fg, bg = subsample_labels(labels, num_samples=20, positive_fraction=0.25, bg_label=0)
    assert len(fg) == 5 and len(bg) == 15
    assert (labels[fg] == 1).all() and (labels[bg] == 0).all()
    assert len(set(fg.tolist())) == 5 and len(set(bg.tolist())) == 15
    # few positives: background fills the rest
    fg, bg = subsample_labels(labels, num_samples=100, positive_fraction=0.5, bg_label=0)
    assert len(fg) == 10 and len(bg) == 90
