import itertools
from collections import Counter

import pytest
import torch

from rotated_det.data.samplers import (
    InferenceSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
    repeat_factors_from_category_frequency,
)


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_training_sampler_is_seeded_and_infinite():
    a, b, c = TrainingSampler(10, seed=1), TrainingSampler(10, seed=1), TrainingSampler(10, seed=2)
    assert _take(a, 35) == _take(b, 35) != _take(c, 35)
    s = _take(a, 30)
    for e in range(3):  # every epoch is a permutation
        assert sorted(s[e * 10 : (e + 1) * 10]) == list(range(10))
    assert s[:10] != s[10:20]
    assert _take(TrainingSampler(4, shuffle=False, seed=0), 9) == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    with pytest.raises(ValueError):
        TrainingSampler(0)


def test_training_sampler_shards_across_ranks():
    world = 3
    shards = []
    for r in range(world):
        s = TrainingSampler(12, seed=5)
        s._rank, s._world_size = r, world
        shards.append(_take(s, 4))
    merged = sorted(i for sh in shards for i in sh)
    assert merged == list(range(12))  # one epoch split over the ranks, no overlap


def test_inference_sampler_covers_each_index_once():
    for size, world in [(10, 3), (2, 4), (0, 2), (7, 1)]:
        got = []
        for r in range(world):
            idx = InferenceSampler._get_local_indices(size, world, r)
            assert len(idx) in (size // world, size // world + 1)
            got += list(idx)
        assert got == list(range(size))
    assert list(InferenceSampler(5)) == [0, 1, 2, 3, 4] and len(InferenceSampler(5)) == 5


def test_repeat_factors_hand_worked():
    # category 0 in 3 of 4 images (f = 0.75), category 1 in 1 of 4 (f = 0.25)
    dicts = [{"annotations": [{"category_id": 0}]}] * 3 + [{"annotations": [{"category_id": 1}]}]
    rf = repeat_factors_from_category_frequency(dicts + [{"annotations": []}], repeat_thresh=0.5)
    # with the empty image: f0 = 3/5, f1 = 1/5 -> r1 = sqrt(0.5 / 0.2) = 1.581
    assert rf.tolist() == pytest.approx([1, 1, 1, (0.5 / 0.2) ** 0.5, 1])


def test_repeat_factor_sampler_repeats_in_expectation():
    # 4 groups of 1000 images with factors 1, 2.5, 0 and 1; ~10 epochs of ~4500 items
    rf = torch.tensor([1.0, 2.5, 0.0, 1.0]).repeat_interleave(1000)
    s = RepeatFactorTrainingSampler(rf, seed=0)
    counts = torch.bincount(torch.tensor(_take(s, 45000)) // 1000, minlength=4).tolist()
    assert counts[2] == 0
    assert counts[1] / counts[0] == pytest.approx(2.5, rel=0.03)
    assert counts[3] / counts[0] == pytest.approx(1.0, rel=0.03)
    first_epoch = _take(RepeatFactorTrainingSampler(rf, seed=3), 4400)
    per_image = Counter(first_epoch)
    assert max(per_image[i] for i in range(1000)) == 1  # factor 1: once per epoch (~4500 items)
    # factor 2.5: 2 or 3 times per epoch (a few of the epoch's last items are not taken yet)
    reps = [per_image[i] for i in range(1000, 2000)]
    assert set(reps) <= {1, 2, 3} and 400 < reps.count(3) < 600
    assert _take(RepeatFactorTrainingSampler(rf, seed=3), 50) == first_epoch[:50]


@pytest.mark.parametrize("shuffle", [True, False])
def test_training_sampler_resumes_at_any_position(shuffle):
    ref = _take(TrainingSampler(7, shuffle=shuffle, seed=4), 80)
    for pos in (0, 5, 7, 23, 70):
        s = TrainingSampler(7, shuffle=shuffle, seed=4)
        _take(s, pos)
        state = s.state_dict()
        assert state == {"seed": 4, "position": pos}
        fresh = TrainingSampler(7, shuffle=shuffle, seed=99)  # the seed comes from the state
        fresh.load_state_dict(state)
        assert _take(fresh, 80 - pos) == ref[pos:]
        assert fresh.position == 80


def test_sharded_and_repeat_factor_samplers_resume():
    shard = TrainingSampler(12, seed=5)
    shard._rank, shard._world_size = 1, 3
    ref = _take(shard, 30)
    shard.load_state_dict({"seed": 5, "position": 13})
    assert _take(shard, 17) == ref[13:]
    rf = torch.tensor([0.5, 1.0, 2.5, 0.0, 1.7])
    ref = _take(RepeatFactorTrainingSampler(rf, seed=8), 60)
    s = RepeatFactorTrainingSampler(rf, seed=1)
    s.load_state_dict({"seed": 8, "position": 31})
    assert _take(s, 29) == ref[31:]
    with pytest.raises(ValueError, match="at least one"):
        RepeatFactorTrainingSampler(torch.tensor([0.0, 0.5]))


def test_unseeded_sampler_follows_numpys_global_seed():
    import numpy as np

    np.random.seed(11)
    a = _take(TrainingSampler(50), 20)
    np.random.seed(11)
    b = _take(TrainingSampler(50), 20)
    np.random.seed(12)
    c = _take(TrainingSampler(50), 20)
    assert a == b != c
