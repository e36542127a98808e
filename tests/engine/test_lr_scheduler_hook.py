"""The LRScheduler hook without an optimizer of its own takes the trainer's, and says so when
the trainer has none."""

import pytest
import torch

from rotated_det.engine import hooks
from rotated_det.engine.train_loop import TrainerBase


class _NoOptimizerTrainer(TrainerBase):
    def run_step(self) -> None:
        pass


def test_lr_scheduler_hook_without_any_optimizer_names_what_is_missing():
    trainer = _NoOptimizerTrainer()
    hook = hooks.LRScheduler(scheduler=object())
    trainer.register_hooks([hook])
    with pytest.raises(ValueError, match="needs an optimizer"):
        hook.before_train()


def test_lr_scheduler_hook_takes_the_trainers_optimizer():
    trainer = _NoOptimizerTrainer()
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    trainer.optimizer = torch.optim.SGD(  # type: ignore[attr-defined]
        [{"params": params[:1], "lr": 0.5}, {"params": params[1:], "lr": 0.1}], lr=0.1
    )
    hook = hooks.LRScheduler(scheduler=object())
    trainer.register_hooks([hook])
    hook.before_train()
    assert hook._optimizer is trainer.optimizer  # type: ignore[attr-defined]
    assert hook._best_param_group_id == 0  # equal group sizes: the larger lr
