"""Run by ``torchrun`` from tests/test_distributed.py: train, then save this rank's parameters."""

import sys

from safetensors.torch import save_file

import genlab
from genlab.train.distributed import current

SETTINGS = dict(latent_dim=4, hidden=(32,), batch_size=64, steps=60, checkpoint_every=20)

if __name__ == "__main__":
    out = sys.argv[1]
    model = genlab.fit("ae", "digits", out=f"{out}/run", device="cpu", **SETTINGS)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, f"{out}/rank{current().rank}.safetensors")
