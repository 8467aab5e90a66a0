"""Run by ``torchrun`` from tests/test_distributed.py: train, then save this rank's parameters.

``distributed_worker.py OUT`` trains the ``ae`` of :data:`SETTINGS`; ``distributed_worker.py OUT
NAME...`` trains each named case of :data:`FAMILY_CASES` in turn in the same processes (one
process-group start for all of them), into ``OUT/NAME/run`` and ``OUT/NAME/rank<r>.safetensors``.
"""

import sys

from safetensors.torch import save_file

import genlab
from genlab.train.distributed import current, exit_worker, shutdown

SETTINGS = dict(latent_dim=4, hidden=(32,), batch_size=64, steps=60, checkpoint_every=20)

# Gradient-trained families under data parallelism: (family, settings). The GAN cases cover
# the lazy R1 penalty and EMA generator (defaults), weight clipping with several critic steps
# (wasserstein) and spectral-norm buffers (hinge + spectral_norm); bigan has three players.
SHORT = dict(budget="smoke", steps=9, checkpoint_every=4, batch_size=32)
FAMILY_CASES = {
    "gan": ("gan", SHORT),
    "gan-wasserstein": ("gan", {**SHORT, "loss": "wasserstein"}),
    "gan-hinge-sn": ("gan", {**SHORT, "loss": "hinge", "spectral_norm": True}),
    "bigan": ("bigan", SHORT),
    "vae": ("vae", SHORT),
    "flow": ("flow", SHORT),
}


def train(family: str, out: str, settings: dict) -> None:
    model = genlab.fit(family, "digits", out=f"{out}/run", device="cpu", **settings)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, f"{out}/rank{current().rank}.safetensors")


if __name__ == "__main__":
    out, names = sys.argv[1], sys.argv[2:]
    if not names:
        train("ae", out, SETTINGS)
    for name in names:
        family, settings = FAMILY_CASES[name]
        train(family, f"{out}/{name}", settings)
    shutdown()
    exit_worker(0)  # as the genlab command ends a torchrun worker
