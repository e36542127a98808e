#!/usr/bin/env python
"""
Train or evaluate a model described by a LazyConfig file.

    tools/lazyconfig_train_net.py --config-file configs/X.py [overrides ...]
    tools/lazyconfig_train_net.py --config-file configs/X.py --eval-only train.init_checkpoint=W
    tools/lazyconfig_train_net.py --config-file configs/X.py --resume    # continue in output_dir
    tools/lazyconfig_train_net.py --config-file configs/X.py --num-gpus 8

Overrides use Hydra's grammar: `train.max_iter=300 optimizer.lr=0.01 train.device=cpu`.
The config needs `model`, `dataloader.train/test/evaluator`, `optimizer`, `lr_multiplier` and
`train` (see configs/common/train.py).
"""

import logging
import os
import sys

# allow running from a source checkout without installing
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rotated_det.config import ConfigKeyError, LazyConfig  # noqa: E402
from rotated_det.engine import (  # noqa: E402
    DefaultTrainer,
    create_ddp_model,
    default_argument_parser,
    default_setup,
    launch,
)
from rotated_det.engine.model_ema import load_inference_weights  # noqa: E402
from rotated_det.utils import comm  # noqa: E402

logger = logging.getLogger("rotated_det")


def do_test(cfg):
    # a model whose classes do not match the test data's metadata fails here, naming the keys
    DefaultTrainer.check_config(cfg, splits=("test",))
    model = DefaultTrainer.build_model(cfg)
    model = create_ddp_model(model)
    init = cfg.train.init_checkpoint
    if not init:
        logger.warning("--eval-only without train.init_checkpoint: evaluating random weights")
    # the EMA weights of a run trained with train.model_ema.enabled=True (see model_ema.py)
    load_inference_weights(
        model,
        init,
        use_ema=bool(cfg.train.get("model_ema", {}).get("enabled", False)),
        allow_unsafe=bool(cfg.train.get("allow_unsafe_checkpoint", False)),
    )
    return DefaultTrainer.test(cfg, model)


def main(args):
    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts or [])
    default_setup(cfg, args)
    if args.eval_only:
        results = do_test(cfg)
    else:
        trainer = DefaultTrainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        results = trainer.train()
    if comm.is_main_process():
        logger.info("Final results: %s", results)
    return results


def invoke_main() -> None:
    parser = default_argument_parser()
    args = parser.parse_args()
    if not args.config_file:
        parser.error("--config-file is required")
    # fail fast, before starting processes, on a bad config file or override
    try:
        LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts or [])
    except ConfigKeyError as e:
        parser.error(str(e))
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    invoke_main()
