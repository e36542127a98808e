"""DatasetEvaluator(s) and inference_on_dataset."""

import pytest
import torch
from torch import nn

from rotated_det.evaluation import DatasetEvaluator, DatasetEvaluators, inference_on_dataset


class Doubler(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(1)
        self.seen_training: list[bool] = []
        self.seen_grad: list[bool] = []

    def forward(self, batch):
        self.seen_training.append(self.training)
        self.seen_grad.append(torch.is_grad_enabled())
        return [{"value": d["x"] * 2} for d in batch]


class Collect(DatasetEvaluator):
    def __init__(self, key="sum"):
        self.key = key
        self.resets = 0

    def reset(self):
        self.resets += 1
        self.values = []

    def process(self, inputs, outputs):
        for i, o in zip(inputs, outputs, strict=True):
            self.values.append((i["id"], float(o["value"])))

    def evaluate(self):
        return {self.key: {"total": sum(v for _, v in self.values), "n": len(self.values)}}


def _loader(n=7, bs=2):
    items = [{"id": i, "x": torch.tensor(float(i))} for i in range(n)]
    return [items[i : i + bs] for i in range(0, n, bs)]


def test_inference_on_dataset_eval_mode_no_grad_and_restores_mode():
    model = Doubler().train()
    ev = Collect()
    results = inference_on_dataset(model, _loader(), ev)
    assert results == {"sum": {"total": 2.0 * sum(range(7)), "n": 7}}
    assert ev.resets == 1
    assert model.seen_training == [False] * 4 and model.seen_grad == [False] * 4
    assert model.training and torch.is_grad_enabled()
    model.eval()
    inference_on_dataset(model, _loader(), ev)
    assert not model.training


def test_inference_restores_mode_on_error():
    class Boom(Doubler):
        def forward(self, batch):
            raise RuntimeError("boom")

    model = Boom().train()
    with pytest.raises(RuntimeError, match="boom"):
        inference_on_dataset(model, _loader(), Collect())
    assert model.training


def test_dataset_evaluators_merge_and_duplicate_error():
    model = Doubler()
    results = inference_on_dataset(model, _loader(), [Collect("a"), Collect("b")])
    assert set(results) == {"a", "b"} and results["a"] == results["b"]
    with pytest.raises(KeyError, match="'a'"):
        inference_on_dataset(model, _loader(), DatasetEvaluators([Collect("a"), Collect("a")]))


def test_no_evaluator_and_iterable_without_len():
    def gen():
        yield from _loader(3)

    model = Doubler()
    assert inference_on_dataset(model, gen(), None) == {}
    assert len(model.seen_training) == 2

    class NoneEval(DatasetEvaluator):
        pass

    assert inference_on_dataset(model, _loader(), NoneEval()) == {}
