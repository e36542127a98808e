"""DatasetEvaluator interface and inference_on_dataset (the evaluation loop)."""

import datetime
import logging
import time
from collections import OrderedDict, abc
from collections.abc import Iterable
from contextlib import ExitStack, contextmanager
from typing import Any

import torch

from rotated_det.utils import comm
from rotated_det.utils.logger import log_every_n_seconds

__all__ = ["DatasetEvaluator", "DatasetEvaluators", "inference_on_dataset", "inference_context"]


class DatasetEvaluator:
    """
    Accumulates model outputs over a dataset and computes metrics at the end::

        evaluator.reset()
        for inputs in data_loader:
            evaluator.process(inputs, model(inputs))
        results = evaluator.evaluate()

    In distributed inference each rank sees a part of the dataset; ``evaluate`` should gather
    what ``process`` stored from all ranks (``rotated_det.utils.comm.gather``), compute
    metrics on the main process and return them there (other ranks may return None).
    """

    def reset(self) -> None:
        """Prepare for a new round of evaluation."""

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """
        Args:
            inputs: the batch given to the model (list of dataset dicts).
            outputs: the model's outputs for it (list of dicts, e.g. ``{"instances": ...}``).
        """

    def evaluate(self) -> dict | None:
        """
        Returns:
            a dict ``{task: {metric: value}}`` (e.g. ``{"dota": {"mAP": 71.2}}``) on the main
            process; values are floats.
        """
        return None


class DatasetEvaluators(DatasetEvaluator):
    """Run several evaluators on the same outputs and merge their results."""

    def __init__(self, evaluators: Iterable[DatasetEvaluator]):
        super().__init__()
        self._evaluators = list(evaluators)

    def reset(self) -> None:
        for e in self._evaluators:
            e.reset()

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for e in self._evaluators:
            e.process(inputs, outputs)

    def evaluate(self) -> dict:
        results: OrderedDict = OrderedDict()
        for e in self._evaluators:
            result = e.evaluate()
            if comm.is_main_process() and result is not None:
                for k, v in result.items():
                    if k in results:
                        raise KeyError(
                            f"Evaluators {[type(x).__name__ for x in self._evaluators]} both "
                            f"report results under {k!r}."
                        )
                    results[k] = v
        return results


@contextmanager
def inference_context(model: torch.nn.Module):
    """Put ``model`` in eval mode for the block, then restore its previous mode."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def inference_on_dataset(
    model: torch.nn.Module | Any,
    data_loader: Iterable,
    evaluator: DatasetEvaluator | list[DatasetEvaluator] | None,
) -> dict:
    """
    Run ``model`` on every batch of ``data_loader`` (eval mode, no_grad; the previous mode is
    restored), feed ``evaluator`` and return ``evaluator.evaluate()``. Logs progress with an
    ETA every few seconds, and the total and per-image inference time at the end.

    Args:
        model: a module (or any callable taking a batch).
        data_loader: an iterable of batches (list[dict]); in distributed inference, each rank
            gets its shard.
        evaluator: a DatasetEvaluator, a list of them, or None (just run the model, e.g. to
            time it).
    Returns:
        the evaluator's results on the main process (``{}`` if it returned None).
    """
    num_devices = comm.get_world_size()
    logger = logging.getLogger(__name__)
    try:
        total = len(data_loader)  # type: ignore[arg-type]
    except TypeError:
        total = None
    logger.info("Start inference on %s batches", total if total is not None else "unknown")

    if evaluator is None:
        evaluator = DatasetEvaluators([])
    if isinstance(evaluator, abc.MutableSequence):
        evaluator = DatasetEvaluators(evaluator)
    evaluator.reset()

    num_warmup = min(5, total - 1) if total else 0
    start_time = time.perf_counter()
    total_data_time = total_compute_time = total_eval_time = 0.0
    processed = 0
    with ExitStack() as stack:
        if isinstance(model, torch.nn.Module):
            stack.enter_context(inference_context(model))
        stack.enter_context(torch.no_grad())

        data_start = time.perf_counter()
        for idx, inputs in enumerate(data_loader):
            total_data_time += time.perf_counter() - data_start
            if idx == num_warmup:
                start_time = time.perf_counter()
                total_data_time = total_compute_time = total_eval_time = 0.0
            compute_start = time.perf_counter()
            outputs = model(inputs)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            total_compute_time += time.perf_counter() - compute_start

            eval_start = time.perf_counter()
            evaluator.process(inputs, outputs)
            total_eval_time += time.perf_counter() - eval_start
            processed += 1

            iters_after_start = idx + 1 - num_warmup * int(idx >= num_warmup)
            data_per_iter = total_data_time / max(iters_after_start, 1)
            compute_per_iter = total_compute_time / max(iters_after_start, 1)
            eval_per_iter = total_eval_time / max(iters_after_start, 1)
            per_iter = (time.perf_counter() - start_time) / max(iters_after_start, 1)
            if total is not None and idx >= num_warmup * 2:
                eta = datetime.timedelta(seconds=int(per_iter * (total - idx - 1)))
                log_every_n_seconds(
                    logging.INFO,
                    f"Inference done {idx + 1}/{total}. Dataloading: {data_per_iter:.4f} s/it. "
                    f"Inference: {compute_per_iter:.4f} s/it. Eval: {eval_per_iter:.4f} s/it. "
                    f"Total: {per_iter:.4f} s/it. ETA={eta}",
                    n=5,
                    name=__name__,
                )
            data_start = time.perf_counter()

    total_time = time.perf_counter() - start_time
    counted = max(processed - num_warmup, 1)
    logger.info(
        "Total inference time: %s (%.6f s / batch per device, on %d devices)",
        datetime.timedelta(seconds=int(total_time)),
        total_time / counted,
        num_devices,
    )
    logger.info(
        "Total inference pure compute time: %s (%.6f s / batch per device, on %d devices)",
        datetime.timedelta(seconds=int(total_compute_time)),
        total_compute_time / counted,
        num_devices,
    )
    results = evaluator.evaluate()
    # an evaluator may return None on non-main ranks
    return {} if results is None else results
