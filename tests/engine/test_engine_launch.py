"""launch(): two CPU processes (Gloo) train with DDP and evaluate with gathering."""

import os

import pytest
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_launch_two_machines_by_rank_and_url(tmp_path):
    """Two "machines" (here: two threads of this process) with one process each, meeting at a
    tcp:// URL: machine ranks 0 and 1 give global ranks 0 and 1."""
    import threading

    from rotated_det.engine.launch import find_free_port

    url = f"tcp://127.0.0.1:{find_free_port()}"
    errors = []

    def machine(rank):
        try:
            launch(
                _env_worker,
                1,
                num_machines=2,
                machine_rank=rank,
                dist_url=url,
                args=(str(tmp_path),),
            )
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=machine, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors, errors
    for r in range(2):
        assert torch.load(tmp_path / f"env{r}.pt") == {"rank": r, "world": 2, "local": 0}


@pytest.mark.slow
def test_launch_from_torchrun_environment(tmp_path):
    """RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT as torchrun sets them: launch()
    joins the group in the calling process and spawns nothing."""
    import subprocess
    import sys

    from rotated_det.engine.launch import find_free_port

    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    port = find_free_port()
    code = (
        "import sys, os; from test_engine_launch import _env_worker; "
        "from rotated_det.engine import launch; "
        f"launch(_env_worker, 1, args=({str(tmp_path)!r},)); "
        "import torch.multiprocessing as mp; "
        "assert not mp.active_children()"
    )
    procs = []
    for r in range(2):
        env = dict(os.environ)
        env.update(
            RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r), LOCAL_WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
            PYTHONPATH=os.pathsep.join([here, repo, env.get("PYTHONPATH", "")]),
        )  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env))
    assert [p.wait(timeout=180) for p in procs] == [0, 0]
    for r in range(2):
        assert torch.load(tmp_path / f"env{r}.pt") == {"rank": r, "world": 2, "local": r}
