"""The conformance suite every registered family passes (sklearn's ``check_estimator`` idea).

``check_generative_model(model, data)`` takes a trained model and checks the protocol:
shapes and dtypes, seeded determinism, capability flags honoured (unsupported methods raise
``UnsupportedCapability``), observed coordinates kept by ``sample_conditional``, finite
log-densities, and a save/load round trip that reproduces every output.
"""

from __future__ import annotations

import pytest
import torch

from genlab.data import Dataset
from genlab.errors import DataError, UnsupportedCapability
from genlab.models import GenerativeModel, MCMCSizes, family_class
from genlab.samplers import Mask, gaussian_measurement
from genlab.train.checkpoint import load_model, save_model


def _generator(seed: int, model: GenerativeModel) -> torch.Generator:
    return torch.Generator(device=model.device).manual_seed(seed)


def context_of(model: GenerativeModel, data: Dataset, n: int) -> dict[str, torch.Tensor]:
    """``{"context": the first n test labels}`` for a family that takes context, else ``{}``."""
    if not model.capabilities.context:
        return {}
    assert data.y_test is not None, "a family that takes context needs labelled data"
    return {"context": data.y_test[:n].to(model.device)}


def check_generative_model(model: GenerativeModel, data: Dataset, tmp_path) -> None:
    caps = model.capabilities
    shape = data.info.event_shape
    x = data.x_test[:6].to(model.device)
    model.eval()

    def ctx(n: int) -> dict[str, torch.Tensor]:
        return context_of(model, data, n)

    # the class declares a family, a config and budgets usable by `compare`
    assert family_class(model.family) is type(model)
    assert {"smoke", "fast", "full"} <= set(type(model).budgets)
    assert model.family in repr(model)

    with torch.no_grad():
        if caps.sample:
            a = model.sample(5, generator=_generator(1, model), **ctx(5))
            b = model.sample(5, generator=_generator(1, model), **ctx(5))
            c = model.sample(5, generator=_generator(2, model), **ctx(5))
            dtype = torch.int64 if data.info.kind == "text" else torch.float32
            assert a.shape == (5, *shape) and a.dtype == dtype
            assert torch.isfinite(a).all()
            torch.testing.assert_close(a, b, rtol=0, atol=0)
            assert not torch.equal(a, c), "different seeds gave identical samples"
        else:
            with pytest.raises(UnsupportedCapability, match=model.family):
                model.sample(2)

        if caps.log_prob != "none":
            lp = model.log_prob(x, **ctx(6))
            assert lp.shape == (len(x),) and torch.isfinite(lp).all()
            # batch-order invariance: each example's density does not depend on its batch
            perm = torch.arange(len(x) - 1, -1, -1)
            perm_ctx = {k: v[perm] for k, v in ctx(6).items()}
            torch.testing.assert_close(
                model.log_prob(x[perm], **perm_ctx), lp[perm], rtol=1e-4, atol=1e-3
            )
            with pytest.raises(DataError, match="shape"):
                model.log_prob(x.flatten(1)[:, :-1], **ctx(6))
        else:
            with pytest.raises(UnsupportedCapability, match="log_prob"):
                model.log_prob(x)

        z = None
        if caps.encode:
            z = model.encode(x, **ctx(6))
            assert z.dim() == 2 and z.shape[0] == len(x) and torch.isfinite(z).all()
        else:
            with pytest.raises(UnsupportedCapability, match="encode"):
                model.encode(x)

        if caps.decode:
            codes = (
                z if z is not None else torch.randn(len(x), model.latent_dim, device=model.device)
            )
            x_hat = model.decode(codes, **ctx(6))
            assert x_hat.shape == (len(x), *shape) and torch.isfinite(x_hat).all()
        else:
            with pytest.raises(UnsupportedCapability, match="decode"):
                model.decode(torch.zeros(1, 1, device=model.device))

        mask = torch.zeros(shape, dtype=torch.bool)
        mask.view(-1)[: mask.numel() // 2] = True  # observe the first half (the top of an image)
        if caps.supports("conditional"):
            out = model.sample_conditional(x, mask, 3, generator=_generator(3, model), **ctx(6))
            assert out.shape == (3, len(x), *shape) and torch.isfinite(out).all()
            observed = mask.expand_as(x).to(model.device)
            torch.testing.assert_close(
                out[observed.expand(3, *x.shape)].view(3, -1), x[observed].expand(3, -1)
            )
            again = model.sample_conditional(x, mask, 3, generator=_generator(3, model), **ctx(6))
            torch.testing.assert_close(out, again, rtol=0, atol=0)
        else:
            with pytest.raises(UnsupportedCapability, match="sample_conditional"):
                model.sample_conditional(x, mask, 2)

        # posterior sampling given a measurement: the observed half, with noise
        observation = gaussian_measurement(Mask(mask), Mask(mask)(x.cpu()), noise_std=0.5)
        options = model.mcmc_options(
            "posterior", MCMCSizes(steps=4, n_candidates=4)
        )  # MCMC families: few transitions
        if caps.supports("posterior"):
            post = model.sample_posterior(
                observation, 2, generator=_generator(4, model), **ctx(6), **options
            )
            assert post.shape == (2, len(x), *shape) and torch.isfinite(post).all()
            again = model.sample_posterior(
                observation, 2, generator=_generator(4, model), **ctx(6), **options
            )
            torch.testing.assert_close(post, again, rtol=0, atol=0)
        else:
            with pytest.raises(UnsupportedCapability, match="sample_posterior"):
                model.sample_posterior(observation, 2, **options)

        check_context_refused_or_taken(model, x)

    # save / load round trip into a fresh model of the same configuration
    path = tmp_path / "model.safetensors"
    save_model(path, model)
    fresh = type(model)(model.config, model.info).to(model.device)
    load_model(path, fresh)
    fresh.eval()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, rtol=0, atol=0)
    with torch.no_grad():
        if caps.sample:
            torch.testing.assert_close(
                fresh.sample(4, generator=_generator(5, model), **ctx(4)),
                model.sample(4, generator=_generator(5, model), **ctx(4)),
            )
        if caps.encode:
            torch.testing.assert_close(fresh.encode(x, **ctx(6)), model.encode(x, **ctx(6)))
        if caps.log_prob != "none" and caps.log_prob != "estimate":
            torch.testing.assert_close(fresh.log_prob(x, **ctx(6)), model.log_prob(x, **ctx(6)))


def check_context_refused_or_taken(model: GenerativeModel, x: torch.Tensor) -> None:
    """``context=`` on every method: refused by a family that models p(x) alone (it says so),
    checked against the batch by one that takes it."""
    caps = model.capabilities
    context = torch.zeros(len(x), dtype=torch.long, device=model.device)  # class 0 for all
    calls = {
        "sample": lambda c: model.sample(len(x), generator=_generator(0, model), context=c),
        "log_prob": lambda c: model.log_prob(x, context=c),
        "encode": lambda c: model.encode(x, context=c),
        "decode": lambda c: model.decode(
            torch.zeros(len(x), getattr(model, "latent_dim", 1), device=model.device), context=c
        ),
        "sample_conditional": lambda c: model.sample_conditional(
            x, torch.ones(x.shape[1:], dtype=torch.bool), 1, context=c
        ),
    }
    supported = {
        "sample": caps.sample,
        "log_prob": caps.supports("density"),
        "encode": caps.encode,
        "decode": caps.decode,
        "sample_conditional": caps.supports("conditional"),
    }
    for method, call in calls.items():
        if not supported[method]:
            with pytest.raises(UnsupportedCapability, match=method):
                call(context)
        elif caps.context:
            call(context)
            with pytest.raises(DataError, match="one row per example"):
                call(context[:-1])
        else:
            with pytest.raises(UnsupportedCapability, match="context"):
                call(context)


def check_gradients(model: GenerativeModel, data: Dataset) -> None:
    """Every trainable parameter receives a finite gradient from one training step."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return
    from genlab.train import Optimizers, TrainConfig

    model.train()
    grads: dict[str, torch.Tensor] = {}
    hooks = [
        p.register_post_accumulate_grad_hook(
            lambda p, name=name: grads.__setitem__(name, p.grad.clone())
        )
        for name, p in model.named_parameters()
        if p.requires_grad
    ]
    optimizers = Optimizers(model.configure_optimizers(TrainConfig(steps=1)))
    x = data.x_train[:16].to(model.device)
    if data.info.levels is not None and model.capabilities.log_prob != "none":
        x = x + torch.rand_like(x) - 0.5
    context = {"context": data.y_train[:16].to(model.device)} if model.capabilities.context else {}
    generator = torch.Generator(device=model.device).manual_seed(0)
    model.training_step(x, optimizers, generator, **context)
    for hook in hooks:
        hook.remove()
    names = {name for name, p in model.named_parameters() if p.requires_grad}
    assert names - set(grads) == set(), (
        f"parameters without gradient: {sorted(names - set(grads))}"
    )
    assert all(torch.isfinite(g).all() for g in grads.values())
