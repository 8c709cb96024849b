"""Training under torchrun: two gloo processes on the CPU take the step a single process takes on the same
global batch (loss and every gradient), and together write exactly one complete run folder."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from conftest import TINY_ARGS
from skinsim.compute.distributed import World
from skinsim.runs.folder import is_run

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available in this torch build")
REPO = Path(__file__).resolve().parents[1]

# Runs skinsim.train with train_step wrapped: after the first step, each rank saves the loss and the gradients.
DUMP_FIRST_STEP = """
import os, sys, torch
import skinsim.train.epoch as E
import skinsim.train.train as T
real_step, done = E.train_step, []
def dumping_step(cfg, net, objective, inputs, batch, generator, world):
    loss, emb, y = real_step(cfg, net, objective, inputs, batch, generator, world)
    if not done:
        model = getattr(net, "module", net)
        named = [*model.named_parameters(), *(("objective." + n, p) for n, p in objective.named_parameters())]
        grads = {n: p.grad.clone() for n, p in named if p.grad is not None}
        torch.save({"loss": loss, "grads": grads, "batch": list(batch), "emb": emb, "world": world.size},
                   os.environ["SKINSIM_TEST_DUMP"] + f".rank{world.rank}")
        done.append(True)
    return loss, emb, y
E.train_step = dumping_step
sys.exit(T.main(sys.argv[1:]))
"""


def run_training(target: Path | str, args: list[str], dump: Path, processes: int,
                 extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a training script (a path) or module ('-m skinsim.train') in `processes` processes (torchrun)."""
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    # a script run by path sees its own folder, not the checkout: put the checkout on the path
    env = {**os.environ, "SKINSIM_TEST_DUMP": str(dump), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           **(extra_env or {})}
    return subprocess.run([*launcher, *str(target).split(" "), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("loss", ["triplet", "triplet+proxy-anchor"])
def test_two_processes_take_the_single_process_step_and_write_one_run(loss: str, synthetic_data: Path,
                                                                      tmp_path: Path):
    script = tmp_path / "dump_first_step.py"
    script.write_text(DUMP_FIRST_STEP)
    args = ["--data-dir", str(synthetic_data), *TINY_ARGS, "--epochs", "1", "--max_steps", "2", "--no-audit",
            "--loss", loss]
    single = run_training(script, [*args, "--out", str(tmp_path / "runs" / "single")], tmp_path / "single", 1)
    assert single.returncode == 0, single.stderr[-3000:]
    # rank 0 alone logs to W&B (offline), when wandb is installed
    wandb = importlib.util.find_spec("wandb") is not None
    pair = run_training(script, [*args, "--out", str(tmp_path / "runs" / "ddp")] + (["--wandb"] if wandb else []),
                        tmp_path / "ddp", 2,
                        {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"})
    assert pair.returncode == 0, pair.stderr[-3000:]

    one = torch.load(tmp_path / "single.rank0", weights_only=True)
    assert one["world"] == 1
    for rank in (0, 1):
        two = torch.load(tmp_path / f"ddp.rank{rank}", weights_only=True)
        assert two["world"] == 2 and two["batch"] == one["batch"]  # the same global batch
        torch.testing.assert_close(two["emb"], one["emb"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(two["loss"], one["loss"], rtol=1e-4, atol=1e-6)
        assert two["grads"].keys() == one["grads"].keys() and len(one["grads"]) > 10
        # a proxy loss's proxies: not reduced across ranks, yet the single process's gradient on each
        assert ("objective.other.proxies" in one["grads"]) == (loss != "triplet")
        # a gradient near zero is a difference of large terms: its rounding scales with the largest gradient
        # (a proxy loss's are ~100x the triplet loss's)
        floor = 1e-6 * max(1.0, max(float(g.norm()) for g in one["grads"].values()))
        for name, grad in one["grads"].items():
            # float sums taken in another order differ in the last digits; a wrong gradient differs by far more
            error = float((two["grads"][name] - grad).norm())
            assert error <= 1e-4 * float(grad.norm()) + floor, (name, error, float(grad.norm()))

    # exactly one complete run folder, written by rank 0, and no work folder left behind
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["ddp", "latest", "single"]
    assert is_run(tmp_path / "runs" / "ddp")
    assert pair.stdout.count("run written to") == 1
    if wandb:
        assert len(list(tmp_path.glob("wandb/offline-run-*"))) == 1


@pytest.mark.parametrize("n,size,shares", [(14, 2, [7, 7]), (7, 2, [4, 3]), (10, 3, [4, 3, 3]), (2, 3, [1, 1, 0])])
def test_each_rank_takes_a_contiguous_share_of_the_batch(n: int, size: int, shares: list[int]) -> None:
    slices = [World(rank=r, size=size).share_of(n) for r in range(size)]
    assert [s.stop - s.start for s in slices] == shares
    assert slices[0].start == 0 and all(a.stop == b.start for a, b in zip(slices, slices[1:]))
    assert slices[-1].stop == n


def test_work_is_dealt_round_robin() -> None:
    assert [b for b in range(7) if World(rank=1, size=3).owns(b)] == [1, 4]
    assert all(World().owns(b) for b in range(5)) and World().is_main and not World().distributed


KILL_MID_EPOCH = """
import os, signal, sys
import skinsim.train.sampler as S
import skinsim.train.train as T
real_iter = S.PKSampler.__iter__
def dying_iter(self):
    for step, batch in enumerate(real_iter(self)):
        if self.epoch == 1 and step == 1 and os.environ.get("RANK") == "1":
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 one rank in the middle of the second epoch
        yield batch
S.PKSampler.__iter__ = dying_iter
sys.exit(T.main(sys.argv[1:]))
"""


def test_a_distributed_run_killed_mid_epoch_resumes_to_the_same_end(synthetic_data: Path, tmp_path: Path):
    from test_train import REPRO_ARGS, assert_same_run

    args = ["--data-dir", str(synthetic_data), *REPRO_ARGS, "--no-audit"]
    alone = run_training("-m skinsim.train", [*args, "--out", str(tmp_path / "alone")], tmp_path / "x", 2)
    assert alone.returncode == 0, alone.stderr[-3000:]
    script = tmp_path / "kill.py"
    script.write_text(KILL_MID_EPOCH)
    killed = run_training(script, [*args, "--out", str(tmp_path / "killed")], tmp_path / "x", 2)
    assert killed.returncode != 0 and not (tmp_path / "killed").exists()
    assert torch.load(tmp_path / ".killed.partial" / "train_state.pt", weights_only=True)["epoch"] == 1
    resumed = run_training("-m skinsim.train", ["--resume", str(tmp_path / "killed")], tmp_path / "x", 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(tmp_path / "alone", tmp_path / "killed")
