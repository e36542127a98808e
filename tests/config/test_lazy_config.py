"""LazyCall / instantiate / LazyConfig load, save, overrides and to_py."""

import copy
import dataclasses
import os
import textwrap
from collections.abc import Sequence

import pytest
import torch
from omegaconf import DictConfig

from rotated_det.config import L, LazyConfig, instantiate, locate
from rotated_det.config.lazy_config import ConfigKeyError, ConfigTypeError


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


def make_pair(a, b=2):
    return (a, b)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def config_tree(tmp_path):
    """A base config importing shared pieces with relative imports (file and package forms)."""
    root = tmp_path / "configs"
    _write(
        root / "common" / "train.py",
        """
        train = dict(max_iter=100, output_dir="./out", amp=dict(enabled=False), device="cpu",
                     steps=[10, 20])
        """,
    )
    _write(
        root / "common" / "optim.py",
        """
        import torch
        from rotated_det.config import LazyCall as L
        SGD = L(torch.optim.SGD)(params=None, lr=0.1, momentum=0.9)
        """,
    )
    return _write(
        root / "exp" / "linear.py",
        """
        import torch.nn as nn
        from rotated_det.config import LazyCall as L
        from ..common.train import train
        from ..common.optim import SGD as optimizer
        from ..common import optim

        model = L(nn.Linear)(in_features=3, out_features=2)
        train.max_iter = 10
        optimizer.lr = optim.SGD.lr * 2
        head = L("torch.nn.Sequential")()
        """,
    )


def test_lazycall_builds_dictconfig_and_instantiates():
    cfg = L(torch.nn.Conv2d)(in_channels=3, out_channels=8, kernel_size=3)
    assert isinstance(cfg, DictConfig) and cfg._target_ is torch.nn.Conv2d
    cfg.out_channels = 16
    conv = instantiate(cfg)
    assert isinstance(conv, torch.nn.Conv2d) and conv.out_channels == 16
    with pytest.raises(TypeError, match="keyword arguments only"):
        L(torch.nn.Conv2d)(3, 8)


def test_instantiate_recursive_strings_lists_objects_dataclasses():
    marker = object()
    cfg = dict(
        seq=L("torch.nn.Sequential")(),
        pairs=[L(make_pair)(a=1), L(f"{__name__}.make_pair")(a=L(Point)(x=3), b=[L(Point)(x=4)])],
        point=Point(x=L(make_pair)(a=5), y=1),  # a dataclass object holding a lazy node
        obj=marker,
        plain=dict(k=[1, 2]),
    )
    out = instantiate(cfg)
    assert isinstance(out["seq"], torch.nn.Sequential)
    assert out["pairs"][0] == (1, 2)
    assert out["pairs"][1] == (Point(3, 0), [Point(4, 0)])
    assert out["point"] == Point(x=(5, 2), y=1)
    assert out["obj"] is marker
    assert out["plain"] == {"k": [1, 2]}


def test_locate_errors_are_clear():
    assert locate("torch.optim.SGD") is torch.optim.SGD
    assert locate("os.path.join") is os.path.join
    with pytest.raises(ImportError, match="no attribute 'NotThere'"):
        locate("torch.optim.NotThere")


def test_load_with_relative_imports(config_tree):
    cfg = LazyConfig.load(config_tree)
    assert set(cfg.keys()) == {"train", "optimizer", "model", "head"}
    assert cfg.train.max_iter == 10 and cfg.train.output_dir == "./out"
    assert cfg.optimizer.lr == pytest.approx(0.2)
    model = instantiate(cfg.model)
    assert isinstance(model, torch.nn.Linear) and model.weight.shape == (2, 3)
    train, model_cfg = LazyConfig.load(config_tree, keys=("train", "model"))
    assert train.max_iter == 10 and model_cfg.out_features == 2
    # loading twice gives independent objects
    cfg2 = LazyConfig.load(config_tree)
    cfg2.train.max_iter = 99
    assert cfg.train.max_iter == 10
    with pytest.raises(KeyError, match="nearest"):
        LazyConfig.load(config_tree, keys="trian")


def test_load_missing_relative_import_names_file(tmp_path):
    f = _write(tmp_path / "a" / "b.py", "from ..nothere.x import y\n")
    with pytest.raises(ImportError, match="nothere"):
        LazyConfig.load(f)


def test_round_trip_load_override_save_load_instantiate(config_tree, tmp_path):
    cfg = LazyConfig.load(config_tree)
    LazyConfig.apply_overrides(
        cfg, ["train.max_iter=300", "model.out_features=5", "model.bias=false", "optimizer.lr=0.5"]
    )
    path = LazyConfig.save(cfg, str(tmp_path / "config.yaml"))
    assert path.endswith("config.yaml")
    cfg2 = LazyConfig.load(path)
    assert cfg2.model._target_ == "torch.nn.Linear"
    assert cfg2.train == cfg.train
    m1, m2 = instantiate(cfg.model), instantiate(cfg2.model)
    assert type(m1) is type(m2) is torch.nn.Linear
    assert m1.weight.shape == m2.weight.shape == (5, 3) and m1.bias is None and m2.bias is None
    p = [torch.nn.Parameter(torch.zeros(2))]
    cfg.optimizer.params = p
    cfg2.optimizer.params = p
    o1, o2 = instantiate(cfg.optimizer), instantiate(cfg2.optimizer)
    assert type(o1) is type(o2) is torch.optim.SGD
    assert o1.defaults == o2.defaults and o1.defaults["lr"] == 0.5


def test_override_grammar_values(config_tree):
    cfg = LazyConfig.load(config_tree)
    LazyConfig.apply_overrides(
        cfg,
        [
            "train.steps=[1,2,3]",
            "train.output_dir='my dir/x'",
            "train.device=null",
            "train.amp.enabled=true",
            "optimizer.momentum=0.5",
            "+train.extra=abc",
            "~head",
            "train.steps.1=7",
        ],
    )
    assert list(cfg.train.steps) == [1, 7, 3]
    assert cfg.train.output_dir == "my dir/x"
    assert cfg.train.device is None
    assert cfg.train.amp.enabled is True
    assert cfg.optimizer.momentum == 0.5
    assert cfg.train.extra == "abc"
    assert "head" not in cfg


def test_override_unknown_key_names_key_and_nearest(config_tree):
    cfg = LazyConfig.load(config_tree)
    with pytest.raises(KeyError) as e:
        LazyConfig.apply_overrides(cfg, ["trian.max_iter=3"])
    msg = str(e.value)
    assert "'trian'" in msg and "train.max_iter" in msg
    with pytest.raises(KeyError) as e:
        LazyConfig.apply_overrides(cfg, ["train.amp.enabeld=true"])
    assert "train.amp.enabeld" in str(e.value) and "train.amp.enabled" in str(e.value)
    # a parameter the LazyCall target does not take is not silently added either
    with pytest.raises(KeyError, match="model.bais"):
        LazyConfig.apply_overrides(cfg, ["model.bais=false"])
    assert "trian" not in cfg and "enabeld" not in cfg.train.amp and "bais" not in cfg.model
    # ... but an argument of the target that the config leaves at its default is accepted
    LazyConfig.apply_overrides(cfg, ["model.bias=false"])
    assert cfg.model.bias is False
    with pytest.raises(KeyError, match="already exists"):
        LazyConfig.apply_overrides(cfg, ["+train.max_iter=1"])


def load_names(names: str | Sequence[str] = "a", filter_empty: bool = True):
    return names, filter_empty


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "train.max_iter=abc",
            "Override 'train.max_iter=abc': train.max_iter expects an int (current value 10), got "
            "str 'abc'. (Use '++train.max_iter=abc' to set a value of another type on purpose.)",
        ),
        ("train.max_iter=1e4", "train.max_iter expects an int (current value 10), got float"),
        ("train.max_iter=true", "train.max_iter expects an int (current value 10), got bool"),
        ("optimizer.lr=abc", "optimizer.lr expects a float (or an int) (current value 0.2; the"),
        (
            "train.amp.enabled=1",
            "train.amp.enabled expects a bool (true or false) (current value False), got int 1.",
        ),
        ("train.steps=3", "train.steps expects a list, got int 3."),
        ("train.steps=[1,a]", "train.steps.1 expects an int (current value 10), got str 'a'."),
        ("train.steps.0=b", "train.steps.0 expects an int (current value 10), got str 'b'."),
        ("train.amp=3", "train.amp expects a config node (dict), got int 3."),
        ("train.device=true", "Quote it to pass a string: train.device='true'."),
        # an argument the config does not set is checked against the target's annotation
        ("model.bias=abc", "model.bias expects bool (the annotation of the argument), got str"),
    ],
)
def test_override_of_wrong_type_names_key_value_and_expected_type(config_tree, override, message):
    cfg = LazyConfig.load(config_tree)
    before = copy.deepcopy(cfg)
    with pytest.raises(ConfigTypeError) as e:
        LazyConfig.apply_overrides(cfg, [override])
    assert message in str(e.value)
    assert isinstance(e.value, TypeError) and isinstance(e.value, ConfigKeyError)
    assert cfg == before  # nothing was set


def test_override_type_coercions_and_escape_hatches(config_tree):
    cfg = LazyConfig.load(config_tree)
    cfg.train.mean = [1.0, 2.0]
    cfg.train.alias = "${train.max_iter}"
    cfg.data = L(load_names)(names="a")
    LazyConfig.apply_overrides(
        cfg,
        [
            "optimizer.lr=1",  # int -> float
            "train.output_dir=2024",  # a number -> the text typed
            "train.mean=[3,4]",  # elements -> float like the current ones
            "train.device=null",  # null switches anything off
            "train.alias=abc",  # an interpolation's type is unknown
            "data.names=[a,b]",  # `names: str | Sequence[str]` takes a list where "a" was
            "++train.max_iter=abc",  # ++ sets without the check, on purpose
            "+train.new=[x]",  # new keys are not checked
        ],
    )
    assert cfg.optimizer.lr == 1.0 and isinstance(cfg.optimizer.lr, float)
    assert cfg.train.output_dir == "2024"
    assert list(cfg.train.mean) == [3.0, 4.0] and all(type(v) is float for v in cfg.train.mean)
    assert cfg.train.device is None and cfg.train.alias == "abc"
    assert instantiate(cfg.data) == (["a", "b"], True)
    assert cfg.train.max_iter == "abc" and list(cfg.train.new) == ["x"]
    with pytest.raises(ConfigTypeError, match="data.filter_empty expects bool"):
        LazyConfig.apply_overrides(cfg, ["data.filter_empty=0"])


def test_save_falls_back_to_pickle_with_warning(tmp_path, capture_logs):
    cfg = DictConfig(
        dict(a=1, fn=L(make_pair)(a=torch.device("cpu")), lam=L(lambda: 1)()),
        flags={"allow_objects": True},
    )
    with capture_logs("rotated_det.config") as caplog:
        path = LazyConfig.save(cfg, str(tmp_path / "cfg.yaml"))
    assert path.endswith(".pkl")
    assert "fn.a" in caplog.text and "lam._target_" in caplog.text
    assert not os.path.exists(tmp_path / "cfg.yaml")


def test_save_pickle_fallback_loads_back(tmp_path):
    cfg = DictConfig(
        dict(a=1, p=L(make_pair)(a=torch.device("cpu"))), flags={"allow_objects": True}
    )
    path = LazyConfig.save(cfg, str(tmp_path / "cfg.yaml"))
    cfg2 = LazyConfig.load(path)
    assert instantiate(cfg2.p) == (torch.device("cpu"), 2)


def test_to_py_output_is_a_loadable_equal_config(config_tree, tmp_path):
    cfg = LazyConfig.load(config_tree)
    cfg.train.nested = {"1": [1, dict(b=None)]}
    code = LazyConfig.to_py(cfg, prefix="")
    assert "L('torch.nn.Linear')(in_features=3, out_features=2)" in code
    f = _write(tmp_path / "gen.py", code)
    cfg2 = LazyConfig.load(f)
    assert cfg2.train == cfg.train
    assert instantiate(cfg2.model).weight.shape == (2, 3)
    assert "cfg.train = " in LazyConfig.to_py(cfg)


def test_yaml_load_rejects_bad_extension(tmp_path):
    with pytest.raises(ValueError, match=r"\.py, \.yaml"):
        LazyConfig.load(_write(tmp_path / "x.txt", "a: 1"))


class Builder:
    def __init__(self, n):
        self.n = n

    @classmethod
    def make(cls, n=1):
        return cls(n * 10)


def test_classmethod_target_saves_as_path(tmp_path):
    cfg = DictConfig(dict(b=L(Builder.make)(n=2)), flags={"allow_objects": True})
    path = LazyConfig.save(cfg, str(tmp_path / "c.yaml"))
    assert path.endswith(".yaml")  # bound classmethods are found again by their path
    cfg2 = LazyConfig.load(path)
    assert cfg2.b._target_.endswith("Builder.make")
    assert instantiate(cfg2.b).n == 20


def test_load_rel_and_yaml_keys(tmp_path):
    _write(tmp_path / "base.yaml", "train:\n  max_iter: 5\nmodel: {_target_: torch.nn.Identity}\n")
    _write(
        tmp_path / "child.py",
        """
        from rotated_det.config import LazyConfig
        train = LazyConfig.load_rel("base.yaml", "train")
        train.max_iter = 7
        """,
    )
    cfg = LazyConfig.load(str(tmp_path / "child.py"))
    assert cfg.train.max_iter == 7
    model = instantiate(LazyConfig.load(str(tmp_path / "base.yaml"), "model"))
    assert isinstance(model, torch.nn.Identity)


def test_syntax_error_names_file_and_line(tmp_path):
    f = _write(tmp_path / "bad.py", "a = dict(\nb = 1\n")
    with pytest.raises(SyntaxError) as e:
        LazyConfig.load(f)
    assert "bad.py" in str(e.value)


def test_all_of_a_config_file_decides_its_top_level_keys(tmp_path):
    """Helper values a config imports or defines (a list of class names, a split dict) are not
    top-level keys when the file's __all__ leaves them out; without __all__ they are."""
    _write(tmp_path / "data.py", "CLASSES = ['ship']\ndataloader = dict(names=CLASSES)\n")
    body = """\
        from .data import CLASSES, dataloader

        SPLIT = dict(size=512)
        NUM = 3
        model = dict(num_classes=len(CLASSES))
        """
    f = _write(tmp_path / "leaf.py", body + "__all__ = ['model', 'dataloader', 'NUM']\n")
    cfg = LazyConfig.load(f)
    assert sorted(cfg.keys()) == ["dataloader", "model"]  # NUM: exported, but not a config value
    assert cfg.model.num_classes == 1
    f = _write(tmp_path / "no_all.py", body)
    assert sorted(LazyConfig.load(f).keys()) == ["CLASSES", "SPLIT", "dataloader", "model"]
    f = _write(tmp_path / "bad_all.py", body + "__all__ = ['model', 'optimizer']\n")
    with pytest.raises(ConfigKeyError, match=r"bad_all\.py: __all__ names \['optimizer'\]"):
        LazyConfig.load(f)
