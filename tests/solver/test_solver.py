"""Parameter groups, gradient clipping and LR schedules (values at hand-computed iterations)."""

import math

import pytest
import torch
from fvcore.common.param_scheduler import MultiStepParamScheduler
from torch import nn

from rotated_det.config import L, instantiate
from rotated_det.solver import (
    LRMultiplier,
    WarmupParamScheduler,
    cosine_with_warmup,
    get_default_optimizer_params,
    maybe_add_gradient_clipping,
    multistep_with_warmup,
)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.GroupNorm(2, 4))
        self.head = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _group_of(groups, param):
    found = [g for g in groups if any(p is param for p in g["params"])]
    assert len(found) == 1
    return found[0]


def test_param_groups_weight_decay_norm_bias_and_lr_multipliers():
    net = Net()
    groups = get_default_optimizer_params(
        net,
        base_lr=0.1,
        weight_decay=1e-4,
        weight_decay_norm=0.0,
        weight_decay_bias=1e-5,
        lr_multipliers={r"^backbone\.": 0.1},
    )
    conv, bn, gn = net.backbone
    expect = {
        conv.weight: (0.1 * 0.1, 1e-4),
        conv.bias: (0.1 * 0.1, 1e-5),
        bn.weight: (0.1 * 0.1, 0.0),
        # a norm layer's bias is named "bias": the explicit bias setting applies to it
        bn.bias: (0.1 * 0.1, 1e-5),
        gn.weight: (0.1 * 0.1, 0.0),
        gn.bias: (0.1 * 0.1, 1e-5),
        net.head.weight: (0.1, 1e-4),
        net.head.bias: (0.1, 1e-5),
    }
    for p, (lr, wd) in expect.items():
        g = _group_of(groups, p)
        assert g["lr"] == pytest.approx(lr) and g["weight_decay"] == pytest.approx(wd)
    all_params = [p for g in groups for p in g["params"]]
    assert len(all_params) == len({id(p) for p in all_params}) == 8  # frozen excluded
    assert not any(p is net.frozen.weight for p in all_params)
    # identical hyper-parameters share a group
    assert len(groups) == len({(g["lr"], g["weight_decay"]) for g in groups})
    opt = torch.optim.SGD(groups, lr=1.0, momentum=0.9)
    assert len(opt.param_groups) == len(groups)


def test_param_groups_without_bias_override_norm_bias_gets_norm_decay():
    net = Net()
    groups = get_default_optimizer_params(net, weight_decay=1e-4, weight_decay_norm=0.0)
    bn = net.backbone[1]
    assert _group_of(groups, bn.bias)["weight_decay"] == 0.0
    assert _group_of(groups, net.head.bias)["weight_decay"] == 1e-4
    assert "lr" not in _group_of(groups, net.head.weight)  # optimizer default lr


def test_param_groups_from_lazy_config_and_lr_factor_func():
    net = Net()
    cfg = L(torch.optim.SGD)(
        params=L(get_default_optimizer_params)(
            base_lr=0.02, lr_factor_func=lambda name: 2.0 if name.startswith("head") else 1.0
        ),
        lr=0.02,
    )
    cfg.params.model = net
    opt = instantiate(cfg)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lrs[id(net.head.weight)] == pytest.approx(0.04)
    assert lrs[id(net.backbone[0].weight)] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="base_lr"):
        get_default_optimizer_params(net, lr_multipliers={"x": 2.0})


def test_gradient_clipping_value_and_norm():
    for clip_type, check in (
        ("value", lambda g: g.abs().max() <= 0.5 + 1e-6),
        ("norm", lambda g: g.norm() <= 0.5 + 1e-5),
    ):
        w = nn.Parameter(torch.zeros(4))
        opt = maybe_add_gradient_clipping(
            torch.optim.SGD([w], lr=1.0), clip_type=clip_type, clip_value=0.5
        )
        assert isinstance(opt, torch.optim.SGD)
        (w * torch.tensor([10.0, -3.0, 0.1, 2.0])).sum().backward()
        opt.step()
        # with lr 1 and no momentum the update equals minus the clipped gradient
        assert check(-w.detach()), clip_type
    # norm clipping keeps the direction; the class form works too
    w = nn.Parameter(torch.zeros(2))
    opt = maybe_add_gradient_clipping(torch.optim.SGD, "norm", 1.0)([w], lr=1.0)
    (w * torch.tensor([3.0, 4.0])).sum().backward()
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([-0.6, -0.8]))
    with pytest.raises(ValueError, match="clip_type"):
        maybe_add_gradient_clipping(torch.optim.SGD, "bogus", 1.0)
    sgd = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1)
    assert maybe_add_gradient_clipping(sgd, enabled=False) is sgd


def _lrs(multiplier, max_iter, base_lr=0.02):
    w = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=base_lr)
    sched = LRMultiplier(opt, multiplier, max_iter)
    out = []
    for _ in range(max_iter):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out, sched, opt


def test_warmup_multistep_values_by_hand():
    # MMRotate 1x on 1200 iterations: warm-up 500 iters from 1/3, x0.1 at 800 and 1100
    lrs, _, _ = _lrs(multistep_with_warmup(1200, [800, 1100], 0.1, 500, 1 / 3), 1200)
    base = 0.02
    assert lrs[0] == pytest.approx(base / 3)
    assert lrs[250] == pytest.approx(base * (1 / 3 + (2 / 3) * 250 / 500))
    assert lrs[499] == pytest.approx(base * (1 / 3 + (2 / 3) * 499 / 500))
    assert lrs[500] == pytest.approx(base)
    assert lrs[799] == pytest.approx(base)
    assert lrs[800] == pytest.approx(base * 0.1)
    assert lrs[1099] == pytest.approx(base * 0.1)
    assert lrs[1100] == pytest.approx(base * 0.01)
    assert lrs[1199] == pytest.approx(base * 0.01)


def test_warmup_cosine_values_by_hand():
    lrs, _, _ = _lrs(cosine_with_warmup(100, warmup_iters=10, warmup_factor=0.001), 100, 1.0)
    cos = lambda t: 0.5 * (1 + math.cos(math.pi * t / 100))  # noqa: E731
    assert lrs[0] == pytest.approx(0.001)
    assert lrs[5] == pytest.approx(0.001 + (cos(10) - 0.001) * 0.5)
    assert lrs[10] == pytest.approx(cos(10))
    assert lrs[50] == pytest.approx(0.5)
    assert lrs[99] == pytest.approx(cos(99))


def test_constant_warmup_and_state_dict_restore():
    mult = WarmupParamScheduler(
        MultiStepParamScheduler([1.0, 0.5], milestones=[6], num_updates=10),
        warmup_factor=0.1,
        warmup_length=0.2,
        warmup_method="constant",
    )
    lrs, sched, opt = _lrs(mult, 10, base_lr=1.0)
    assert lrs == pytest.approx([0.1, 0.1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5])
    state = sched.state_dict()
    assert set(state) == {"base_lrs", "last_epoch"} and state["last_epoch"] == 10
    # a fresh scheduler restored at iteration 7 gives iteration 7's lr to the optimizer
    w = nn.Parameter(torch.zeros(1))
    opt2 = torch.optim.SGD([w], lr=1.0)
    s2 = LRMultiplier(opt2, mult, 10)
    s2.load_state_dict({"base_lrs": [1.0], "last_epoch": 1})
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.1)
    s2.load_state_dict({"base_lrs": [1.0], "last_epoch": 7})
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.5)


def test_schedule_validation():
    with pytest.raises(ValueError, match="strictly increasing"):
        multistep_with_warmup(100, [50, 20])
    with pytest.raises(ValueError, match="strictly increasing"):
        multistep_with_warmup(100, [50, 50])
    with pytest.raises(ValueError, match="exactly one"):
        multistep_with_warmup(100)
    with pytest.raises(ValueError, match="warmup_method"):
        WarmupParamScheduler(
            MultiStepParamScheduler([1.0, 0.1], milestones=[5], num_updates=10), 0.1, 0.1, "cubic"
        )
    # fractions of a very short run that land on the same iteration are merged
    lrs, _, _ = _lrs(
        multistep_with_warmup(3, step_fractions=[8 / 12, 11 / 12], warmup_iters=1), 3, 1.0
    )
    assert lrs == pytest.approx([1 / 3, 1.0, 0.1])


def test_common_schedule_follows_train_max_iter(tmp_path):
    import os

    from rotated_det.config import LazyConfig

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    common = os.path.join(repo, "configs", "common")
    os.symlink(common, tmp_path / "common")
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "c.py").write_text(
        "from ..common.train import train\n"
        "from ..common.schedule import mmrotate_1x, cosine\n"
        "from ..common.optim import SGD, AdamW\n"
        "train.max_iter = 1200\n"
        "lr_multiplier = mmrotate_1x()\n"
        "cos = cosine(warmup_iters=10)\n"
    )
    cfg = LazyConfig.load(str(tmp_path / "exp" / "c.py"))
    lrs, _, _ = _lrs(instantiate(cfg.lr_multiplier), 1200, 1.0)
    assert lrs[499] < 1.0 and lrs[500] == pytest.approx(1.0)
    assert lrs[799] == pytest.approx(1.0) and lrs[800] == pytest.approx(0.1)
    assert lrs[1100] == pytest.approx(0.01)
    # overriding train.max_iter moves the drops with it (MMRotate 1x on 120 iterations)
    LazyConfig.apply_overrides(cfg, ["train.max_iter=120", "lr_multiplier.warmup_iters=0"])
    lrs, _, _ = _lrs(instantiate(cfg.lr_multiplier), 120, 1.0)
    assert lrs[79] == pytest.approx(1.0) and lrs[80] == pytest.approx(0.1)
    assert lrs[110] == pytest.approx(0.01)
    lrs, _, _ = _lrs(instantiate(cfg.cos), 120, 1.0)
    assert lrs[60] == pytest.approx(0.5)
    # the saved config holds the resolved numbers
    cfg2 = LazyConfig.load(LazyConfig.save(cfg, str(tmp_path / "saved.yaml")))
    assert cfg2.lr_multiplier.max_iter == 120
    # and the common optimizer configs build against a model
    for name in ("SGD", "AdamW"):
        c = cfg[name]
        c.params.model = Net()
        opt = instantiate(c)
        assert any(g["weight_decay"] == 0.0 for g in opt.param_groups)
