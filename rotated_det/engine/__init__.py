"""Training engine: trainers, hooks, DefaultTrainer, launch and command-line helpers."""

from . import hooks
from .default_trainer import DefaultTrainer
from .defaults import create_ddp_model, default_argument_parser, default_setup
from .hooks import HookBase
from .launch import launch
from .predictor import DefaultPredictor
from .sliding_window import SlidingWindowInference
from .test_time_augmentation import RotatedDetectorWithTTA
from .train_loop import AMPTrainer, SimpleTrainer, TrainerBase

__all__ = [
    "hooks",
    "HookBase",
    "TrainerBase",
    "SimpleTrainer",
    "AMPTrainer",
    "DefaultTrainer",
    "DefaultPredictor",
    "SlidingWindowInference",
    "RotatedDetectorWithTTA",
    "default_argument_parser",
    "default_setup",
    "create_ddp_model",
    "launch",
]
