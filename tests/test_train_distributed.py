"""Two gloo processes under torchrun give the single-process loss and gradients on the concatenated batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from openbind.train import DistInfo, all_reduce_mean, barrier, broadcast_object, cleanup, init_distributed

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import copy
import json
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from openbind.train import (
    all_reduce_mean, barrier, broadcast_object, cleanup, contrastive_accuracy, contrastive_loss, init_distributed,
)


class Towers(nn.Module):
    """An "image" tower, a "new modality" tower and a learnable log scale."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Linear(8, 16)
        self.other = nn.Sequential(nn.Linear(6, 32), nn.GELU(), nn.Linear(32, 16))
        self.log_scale = nn.Parameter(torch.tensor(2.5))

    def forward(self, xa, xm):
        if not any(p.requires_grad for p in self.anchor.parameters()):
            with torch.no_grad():
                a = F.normalize(self.anchor(xa), dim=-1)
        else:
            a = F.normalize(self.anchor(xa), dim=-1)
        return a, F.normalize(self.other(xm), dim=-1), self.log_scale.exp()


info = init_distributed()
rank, world, n = info.rank, info.world_size, 5
results = {"world": world, "is_main": [info.is_main], "runs": []}
for local_loss in (False, True):
    for frozen_anchor in (False, True):
        torch.manual_seed(0)
        model = Towers()
        if frozen_anchor:
            model.anchor.requires_grad_(False)
        reference = copy.deepcopy(model)
        ddp = DistributedDataParallel(model)
        xa, xm = torch.randn(n * world, 8), torch.randn(n * world, 6)  # seeded: the same on every rank
        mine = slice(rank * n, (rank + 1) * n)

        a, m, scale = ddp(xa[mine], xm[mine])
        loss = contrastive_loss(a, m, scale, local_loss=local_loss)
        loss.backward()
        losses = [torch.zeros(()) for _ in range(world)]
        torch.distributed.all_gather(losses, loss.detach())

        ra, rm, rscale = reference(xa, xm)
        ref_loss = contrastive_loss(ra, rm, rscale, gather=False)
        ref_loss.backward()

        grads = dict(ddp.module.named_parameters())
        trained = [(name, p) for name, p in reference.named_parameters() if p.requires_grad]
        grad_diff = max((grads[name].grad - p.grad).abs().max().item() for name, p in trained)
        frozen_grads = [name for name, p in grads.items() if not p.requires_grad and p.grad is not None]
        results["runs"].append({
            "local_loss": local_loss,
            "frozen_anchor": frozen_anchor,
            "losses": [x.item() for x in losses],
            "mean_loss": all_reduce_mean(loss).item(),
            "ref_loss": ref_loss.item(),
            "grad_diff": grad_diff,
            "grad_norm": max(p.grad.abs().max().item() for _, p in trained),
            "frozen_grads": frozen_grads,
        })
torch.manual_seed(1)
emb = F.normalize(torch.randn(n * world, 4), dim=-1)
noisy = F.normalize(emb + 0.6 * torch.randn(n * world, 4), dim=-1)  # some pairs retrieved, some not
results["accuracy"] = [x.item() for x in contrastive_accuracy(emb[mine], noisy[mine])]
results["ref_accuracy"] = [x.item() for x in contrastive_accuracy(emb, noisy, gather=False)]
results["broadcast"] = broadcast_object({"run": f"from-{rank}"})
results["mean_rank"] = all_reduce_mean(torch.tensor(rank)).item()
barrier()
all_results = [None] * world
torch.distributed.all_gather_object(all_results, results)
if info.is_main:
    with open(sys.argv[1], "w") as f:
        json.dump(all_results, f)
del ddp, model, reference  # DDP's reducer must go before its process group, or gloo may abort at exit
barrier()
cleanup()
# Leave without the interpreter's teardown: on loaded 2-core machines gloo's threads sometimes abort it
# ("terminate called without an active exception") after the results are written, which is not what this
# test checks.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def torchrun_results(tmp_path_factory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("torchrun")
    script, out = tmp / "contrastive_ddp.py", tmp / "results.json"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), str(script), str(out),
    ]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_torchrun_setup_and_collectives(torchrun_results):
    assert [r["world"] for r in torchrun_results] == [2, 2]
    assert [r["is_main"] for r in torchrun_results] == [[True], [False]]
    assert [r["broadcast"] for r in torchrun_results] == [{"run": "from-0"}] * 2
    assert [r["mean_rank"] for r in torchrun_results] == [0.5, 0.5]


def test_accuracy_is_computed_over_the_global_batch(torchrun_results):
    reference = torchrun_results[0]["ref_accuracy"]
    assert 0.0 < min(reference) and max(reference) < 1.0  # a case where gathering changes the answer
    assert [r["accuracy"] for r in torchrun_results] == [reference, reference]


@pytest.mark.parametrize("local_loss", [False, True])
@pytest.mark.parametrize("frozen_anchor", [False, True])
def test_two_ranks_equal_one_process_on_the_concatenated_batch(torchrun_results, local_loss, frozen_anchor):
    for rank, result in enumerate(torchrun_results):
        (run,) = [r for r in result["runs"] if r["local_loss"] == local_loss and r["frozen_anchor"] == frozen_anchor]
        # gradients after DDP averaging equal the single-process gradients (and are not trivially zero)
        assert run["grad_norm"] > 1e-3
        assert run["grad_diff"] < 1e-5, (rank, run)
        assert run["frozen_grads"] == []
        # the mean over ranks of the returned loss is the single-process loss in both modes
        assert run["mean_loss"] == pytest.approx(run["ref_loss"], abs=1e-5)
        if local_loss:  # each rank returns its own rows' share, which differ
            assert abs(run["losses"][0] - run["losses"][1]) > 1e-4
        else:  # every rank returns the full global loss
            assert run["losses"] == pytest.approx([run["ref_loss"]] * 2, abs=1e-5)


def test_single_process_without_torchrun_is_a_no_op(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    info = init_distributed("gloo")
    assert info == DistInfo(0, 1, 0, torch.device("cpu"))
    assert info.is_main and not info.distributed
    assert not torch.distributed.is_initialized()
    barrier()
    assert broadcast_object({"a": 1}) == {"a": 1}
    value = torch.tensor([1, 2])
    mean = all_reduce_mean(value)
    assert mean.dtype == torch.float64 and mean.tolist() == [1.0, 2.0]
    cleanup()


def test_partial_torchrun_environment_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(RuntimeError, match="RANK"):
        init_distributed("gloo")
