"""The contrastive losses under torch.distributed (2 CPU processes, gloo) see every rank's
negatives: with the trainer's gradient combination, losses and updates equal those of one
process on the concatenated batch, and so does a whole `clip` training run."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import genlab
from genlab.objectives import all_gather_with_grad, contrastive_loss
from genlab.train.distributed import average_gradients

WORLD = 2
CASES = [("info_nce", False), ("info_nce", True), ("ratio", False), ("ratio", True)]
SHARES = {"equal": (3, 3), "uneven": (4, 2)}  # rows of the 6-pair global batch on ranks 0, 1
CLIP_RUN = dict(hidden=(32,), latent_dim=8, batch_size=64, steps=24, val_fraction=0.1)


def _problem() -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear]:
    """A global batch of 6 pairs and a shared linear encoder, identical on every process."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = x + 0.5 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    encoder = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        encoder.weight.copy_(torch.randn(3, 4, generator=g, dtype=torch.float64))
        encoder.bias.copy_(torch.randn(3, generator=g, dtype=torch.float64))
    return x, y, encoder


def _rows(share: str, rank: int) -> slice:
    first, _ = SHARES[share]
    return slice(0, first) if rank == 0 else slice(first, 6)


def _step(kind, views, x, y, encoder, **kwargs) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """What a training step does: per-example losses, backward of their mean, the gradients."""
    encoder.zero_grad()
    losses = contrastive_loss(kind, encoder(x), encoder(y), 0.3, views=views, **kwargs)
    losses.mean().backward()
    return losses.detach(), [p.grad.clone() for p in encoder.parameters()]


def _worker(rank: int, rendezvous: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    x, y, encoder = _problem()

    # the trainer's recipe: local rows, mean loss, gradients combined as sum_r (n_r / n) g_r
    distributed = {}
    for share in SHARES:
        rows = _rows(share, rank)
        for kind, views in CASES:
            losses, grads = _step(kind, views, x[rows], y[rows], encoder)
            average_gradients(list(encoder.parameters()), (rows.stop - rows.start) / 6)
            distributed[share, kind, views] = (
                losses,
                [p.grad.clone() for p in encoder.parameters()],
            )
    (gathered,), offset = all_gather_with_grad(x[_rows("uneven", rank)])
    # gather=False (unsharded validation data) stays local: no collective, local negatives
    local = {case: _step(*case, x[:3], y[:3], encoder, gather=False)[0] for case in CASES}

    # a whole training run of clip (no augmentation: the same batches give the same updates)
    data = genlab.data.load("digits")
    two_processes = genlab.fit("clip", data, device="cpu", **CLIP_RUN).state_dict()
    dist.destroy_process_group()

    # the references: one process, the whole batch (no process group any more)
    torch.testing.assert_close(gathered, x)
    assert offset == (0 if rank == 0 else 4)
    for (share, kind, views), (losses, grads) in distributed.items():
        expected_losses, expected_grads = _step(kind, views, x, y, encoder)
        torch.testing.assert_close(losses, expected_losses[_rows(share, rank)])
        for grad, expected in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)
    for case in CASES:
        torch.testing.assert_close(local[case], _step(*case, x[:3], y[:3], encoder)[0])
    one_process = genlab.fit("clip", data, device="cpu", **CLIP_RUN).state_dict()
    for key, value in one_process.items():
        torch.testing.assert_close(two_processes[key], value, rtol=1e-4, atol=1e-5)


def test_two_processes_give_the_losses_gradients_and_training_of_one(tmp_path):
    # a worker whose assertion fails raises here with its traceback
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"),), nprocs=WORLD, join=True)


def test_without_a_process_group_the_gather_is_the_identity():
    x = torch.randn(3, 2)
    (same,), offset = all_gather_with_grad(x)
    assert same is x and offset == 0
