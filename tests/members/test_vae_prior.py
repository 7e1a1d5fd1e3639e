"""The VAE's fitted prior: running moments of its codes, sampled through z = mean + L ε."""
from __future__ import annotations

import dataclasses

import torch

from engine.members.vae import VAE, FittedPrior
from tests.members.test_members import build, train


def with_prior(config, prior):
    vae = config.member("vae")
    return dataclasses.replace(config, members=(dataclasses.replace(vae, params={**vae.params, "prior": prior}),))


def test_the_moments_match_the_codes_they_saw():
    torch.manual_seed(0)
    mean = torch.tensor([1.0, -2.0, 0.5])
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.3, 0.0], [0.0, 0.0, 0.2]])
    prior = FittedPrior(3)
    for _ in range(200):  # codes with a known mean and covariance, posterior variance 0.01 each
        mu = mean + torch.randn(256, 3) @ mix.T
        prior.observe(mu, torch.full((256, 3), 0.01).log(), 0.05)
    centre, factor = prior.affine()
    assert torch.allclose(centre, mean, atol=0.1)
    expected = mix @ mix.T + 0.01 * torch.eye(3)
    assert torch.allclose(factor @ factor.T, expected, atol=0.1)


def test_an_indefinite_estimate_still_gives_a_factor():
    prior = FittedPrior(2)
    prior.mean.copy_(torch.tensor([1.0, 1.0]))
    prior.second.copy_(torch.tensor([[1.0, 1.0], [1.0, 1.0]]))  # covariance 0: not positive definite
    prior.seen.fill_(10)
    _, factor = prior.affine()
    assert torch.isfinite(factor).all()


def test_new_runs_fit_the_prior_and_old_runs_keep_the_standard_one():
    assert VAE.settle_params({"prior": "auto"}, 1_000)["prior"] == "fitted"
    assert VAE.settle_params({"prior": "standard"}, 1_000)["prior"] == "standard"


def test_a_fitted_vae_samples_from_its_codes_and_saves_them(tiny_config):
    member, dataset = build(with_prior(tiny_config(["vae"]), "fitted"), "vae")
    assert "prior" in member.networks() and "prior" not in member.optimizers
    train(member, dataset, 30)
    assert member.prior.ready()
    eps = member.latents(8, torch.Generator().manual_seed(0))
    mean, factor = member.prior.affine()
    assert torch.allclose(member.codes(eps), mean + eps @ factor.T)
    first = member.sample(8, torch.Generator().manual_seed(0))
    assert torch.equal(first, member.sample(8, torch.Generator().manual_seed(0)))  # same seed, same images

    again, _ = build(with_prior(tiny_config(["vae"]), "fitted"), "vae")
    again.load_state_dict(member.state_dict())  # a checkpoint round trip keeps the fitted moments
    assert torch.equal(again.sample(8, torch.Generator().manual_seed(0)), first)


def test_a_standard_prior_decodes_the_latents_themselves(tiny_config):
    member, dataset = build(with_prior(tiny_config(["vae"]), "auto"), "vae")  # an old run.json's "auto"
    assert "prior" not in member.networks()
    train(member, dataset, 5)
    eps = member.latents(4, torch.Generator().manual_seed(0))
    assert torch.equal(member.codes(eps), eps)
