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
    # optional: best_checkpointer=dict(val_metric="dota/mAP", mode="max"),
    # optional: precise_bn=dict(enabled=True, num_iter=200),
)
