"""The contrastive losses under torch.distributed (2 CPU processes, gloo) see every rank's
negatives: the ranks' losses and gradients equal one process's on the concatenated batch."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from genlab.objectives import all_gather_with_grad, contrastive_loss, info_nce, nt_xent

WORLD = 2
CASES = [("info_nce", False), ("info_nce", True), ("ratio", False), ("ratio", True)]


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


def _loss_and_grads(kind: str, views: bool, x, y, encoder) -> tuple[float, list[torch.Tensor]]:
    encoder.zero_grad()
    loss = contrastive_loss(kind, encoder(x), encoder(y), 0.3, views=views).mean()
    loss.backward()
    return float(loss.detach()), [p.grad.clone() for p in encoder.parameters()]


def _worker(rank: int, rendezvous: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    x, y, encoder = _problem()
    rows = slice(3 * rank, 3 * rank + 3)  # an equal share of the global batch each

    # what a data-parallel trainer does: local loss, backward, average the gradients over ranks
    distributed = {}
    for kind, views in CASES:
        loss, grads = _loss_and_grads(kind, views, x[rows], y[rows], encoder)
        mean_loss = torch.tensor(loss, dtype=torch.float64)
        dist.all_reduce(mean_loss)
        for grad in grads:
            dist.all_reduce(grad)
        distributed[kind, views] = (float(mean_loss) / WORLD, [g / WORLD for g in grads])

    # uneven shares (4 + 2 rows): each rank's per-example losses are its rows of the global ones,
    # and summing the ranks' gradients of their summed losses gives the global sum's gradient
    uneven = slice(0, 4) if rank == 0 else slice(4, 6)
    (gathered,), offset = all_gather_with_grad(x[uneven])
    per_example = {}
    for name, fn in (("info_nce", info_nce), ("nt_xent", nt_xent)):
        encoder.zero_grad()
        losses = fn(encoder(x[uneven]), encoder(y[uneven]), 0.3)
        losses.sum().backward()
        grads = [p.grad.clone() for p in encoder.parameters()]
        for grad in grads:
            dist.all_reduce(grad)
        per_example[name] = (losses.detach(), grads)
    with torch.no_grad():  # gather=False (unsharded validation data) stays local
        local = {
            (kind, views): contrastive_loss(
                kind, encoder(x[rows]), encoder(y[rows]), 0.3, views=views, gather=False
            )
            for kind, views in CASES
        }
    dist.destroy_process_group()

    # the reference: one process, the whole batch (no process group any more)
    torch.testing.assert_close(gathered, x)
    assert offset == (0 if rank == 0 else 4)
    for (kind, views), (loss, grads) in distributed.items():
        expected_loss, expected_grads = _loss_and_grads(kind, views, x, y, encoder)
        assert abs(loss - expected_loss) < 1e-10, (kind, views, loss, expected_loss)
        for grad, expected in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)
    with torch.no_grad():
        for kind, views in CASES:
            alone = contrastive_loss(kind, encoder(x[rows]), encoder(y[rows]), 0.3, views=views)
            torch.testing.assert_close(local[kind, views], alone)
    for name, fn in (("info_nce", info_nce), ("nt_xent", nt_xent)):
        encoder.zero_grad()
        losses = fn(encoder(x), encoder(y), 0.3)
        losses.sum().backward()
        torch.testing.assert_close(per_example[name][0], losses.detach()[uneven])
        for grad, param in zip(per_example[name][1], encoder.parameters(), strict=True):
            torch.testing.assert_close(grad, param.grad, rtol=1e-9, atol=1e-12)


def test_two_process_losses_and_gradients_equal_the_single_process_ones(tmp_path):
    # a worker that fails raises here with its traceback
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"),), nprocs=WORLD, join=True)


def test_without_a_process_group_the_gather_is_the_identity():
    x = torch.randn(3, 2)
    (same,), offset = all_gather_with_grad(x)
    assert same is x and offset == 0
