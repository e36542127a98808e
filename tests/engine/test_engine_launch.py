"""launch(): two CPU processes (Gloo) train with DDP and evaluate with gathering."""

import os

import torch
from engine_tiny_task import MSEEvaluator, StatefulTrainLoader, TestLoader, TinyRegressor

from rotated_det.engine import SimpleTrainer, create_ddp_model, launch
from rotated_det.evaluation import inference_on_dataset
from rotated_det.utils import comm


def _worker(out_dir: str) -> None:
    rank = comm.get_rank()
    assert comm.get_world_size() == 2 and comm.get_local_rank() == rank
    torch.manual_seed(100 + rank)  # different init on each rank: DDP must broadcast rank 0's
    model = create_ddp_model(TinyRegressor(), broadcast_buffers=False)
    # rank-dependent data: gradients differ per rank and are averaged by DDP
    loader = StatefulTrainLoader(batch_size=4, seed=1, per_rank=True)
    trainer = SimpleTrainer(model, loader, torch.optim.SGD(model.parameters(), lr=0.1))
    trainer.train(0, 4)
    evaluator = MSEEvaluator()
    results = inference_on_dataset(model, TestLoader(num_batches=5, batch_size=3), evaluator)
    torch.save(
        {
            "state": model.module.state_dict(),
            "results": results,
            "ids": evaluator.gathered_ids,
            "seed": comm.shared_random_seed(),
            "reduced": comm.reduce_dict({"a": torch.tensor(float(rank + 1))}),
            "gather_all": comm.all_gather(rank * 10),
        },
        os.path.join(out_dir, f"rank{rank}.pt"),
    )


def test_launch_two_cpu_processes_ddp_and_gathering(tmp_path):
    launch(_worker, 2, num_machines=1, machine_rank=0, dist_url="auto", args=(str(tmp_path),))
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    for k, v in r0["state"].items():
        torch.testing.assert_close(v, r1["state"][k], rtol=0, atol=0, msg=k)
    # the weights moved away from the (rank 0) initialisation
    torch.manual_seed(100)
    init = TinyRegressor().state_dict()
    assert not torch.equal(init["net.0.weight"], r0["state"]["net.0.weight"])
    # the evaluator on rank 0 saw the outputs of both ranks: batches 0,2,4 and 1,3 (3 each)
    assert r0["ids"] == sorted(range(1000 * 3, 1005 * 3))
    assert r0["results"]["regression"]["count"] == 15.0
    assert r1["results"] == {} and r1["ids"] == []
    assert r0["seed"] == r1["seed"]
    assert float(r0["reduced"]["a"]) == 1.5  # mean of 1 and 2 on rank 0
    assert r0["gather_all"] == r1["gather_all"] == [0, 10]


def _env_worker(out_dir: str) -> None:
    torch.save(
        {"rank": comm.get_rank(), "world": comm.get_world_size(), "local": comm.get_local_rank()},
        os.path.join(out_dir, f"env{comm.get_rank()}.pt"),
    )


def test_launch_single_process_runs_inline(tmp_path):
    launch(_env_worker, 1, args=(str(tmp_path),))
    assert torch.load(tmp_path / "env0.pt") == {"rank": 0, "world": 1, "local": 0}
