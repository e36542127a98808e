# The `train` part of a LazyConfig: defaults read by DefaultTrainer and the train tool.
# Import it in a config (`from ..common.train import train`) and change what differs.
train = dict(
    output_dir="./output",
    # weights to start from (a .pth/.pkl path or URL); "" = from scratch. --eval-only loads it.
    init_checkpoint="",
    # True: also read checkpoints that hold arbitrary Python objects. Unpickling those runs any
    # code the file carries; by default only tensors, numpy arrays, numbers, strings and
    # containers are read. Only for files whose origin you trust.
    allow_unsafe_checkpoint=False,
    max_iter=90000,
    amp=dict(enabled=False),  # float16 + GradScaler on GPU, bfloat16 autocast on CPU
    ddp=dict(  # arguments of DistributedDataParallel
        broadcast_buffers=False,
        find_unused_parameters=False,
        fp16_compression=False,
    ),
    checkpointer=dict(period=5000, max_to_keep=100),  # in iterations
    eval_period=5000,  # iterations between evaluations (0: only at the end)
    log_period=20,  # iterations between console / metrics.json / TensorBoard writes
    device=None,  # None: "cuda" if available, else "cpu"
    seed=-1,  # < 0: a random seed (logged); otherwise seed + rank
    tensorboard=True,
    cudnn_benchmark=False,
    # micro-batches per optimizer step: each iteration draws this many batches of
    # dataloader.train.total_batch_size; max_iter, lr schedule and periods count optimizer steps
    grad_accum_steps=1,
    # linear lr scaling rule: lr *= total_batch_size * grad_accum_steps / base_batch_size, once
    # at start; base_batch_size = the images per step optimizer.lr was chosen for (None: unset)
    auto_scale_lr=dict(enabled=False, base_batch_size=None),
    # exponential moving average of the weights, used for evaluation, --eval-only, predictor and
    # export; decay ramps up as decay * (1 - exp(-updates / tau)) (rotated_det/engine/model_ema.py)
    model_ema=dict(enabled=False, decay=0.9998, tau=2000),
    # test-time augmentation of every evaluation (--eval-only, eval_period, the final one): each
    # combination of flips, rot90 (degrees) and scales, boxes mapped back and merged by class-wise
    # rotated NMS ("nms") or weighted box fusion ("wbf") (rotated_det/engine/
    # test_time_augmentation.py); train.tta.enabled=True switches it on
    tta=dict(
        enabled=False,
        hflip=True,
        vflip=False,
        rot90=[0],
        scales=[1.0],
        merge="nms",
        nms_thresh=0.5,
        max_detections=100,  # per image after merging; raise it for crowded scenes
    ),
    # BatchNorm -> SyncBatchNorm with several CUDA processes (one process / CPU: stays BatchNorm)
    sync_bn=False,
    # parameter-name prefixes to freeze, e.g. ["backbone.bottom_up.res2"] (see also the ResNet's
    # freeze_at, which also fixes the BatchNorm statistics of the frozen stages)
    freeze=[],
    # the last `last_iters` iterations map their images with `mapper` (RTMDet: no mosaic/mixup at
    # the end; rotated_det/engine/hooks.py PipelineSwitchHook), e.g.
    # dict(last_iters=5000, mapper=L(DatasetMapper)(...)); None: no switch
    pipeline_switch=None,
    # optional: best_checkpointer=dict(val_metric="dota/mAP", mode="max"),
    # optional: precise_bn=dict(enabled=True, num_iter=200),
)
