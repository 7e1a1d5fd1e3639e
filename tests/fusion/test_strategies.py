"""vote, refine, guide, soup and fitted mixture weights on a tiny trained run."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import UserError
from engine.fusion.base import FusionContext
from engine.fusion.mixture import fit_weights, mixture_stats, simplex_grid
from engine.fusion.registry import FUSIONS, fusion
from engine.fusion.vote import Vote


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from tests.conftest import train_tiny_run

    # the pool's mechanics, unconditional (a run that learnt classes votes class by class:
    # tests/members/test_classes.py)
    return train_tiny_run(tmp_path_factory.mktemp("strategies"), classes="off")


def context_of(session):
    features = lambda images: images.flatten(1)[:, ::8].double().numpy()  # noqa: E731 - a cheap stand-in space
    reference = session.dataset.batch(200, torch.Generator().manual_seed(0)).images
    return FusionContext(features=features, fit_reference=features(reference), checkpoints=session.checkpoint_history())


@pytest.mark.parametrize("name,params", [
    ("vote", {}), ("vote", {"k": "3", "quotas": "true"}), ("vote", {"voters": "judge:1"}),
    ("vote", {"shares": "committee"}), ("vote", {"guide": "1", "critic": "judge"}), ("vote", {"shares": "even", "spread": "2"}), ("vote", {"spread": "0"}), ("vote", {"pick": "herding"}),
    ("refine", {}), ("refine", {"source": "vae", "strength": "0.3", "steps": "3"}),
    ("soup", {"member": "dcgan"}), ("soup", {"member": "diffusion", "checkpoints": "2"}),
    ("mixture", {"weights": "auto"}),
    ("guide", {}), ("guide", {"critic": "judge", "strength": "1", "steps": "3"}),
])
def test_strategy_shape_range_provenance_determinism(session, name, params):
    strategy = fusion(name)
    values = strategy.validate(params)
    context = context_of(session)
    first = strategy.fuse(session.members, 10, torch.Generator().manual_seed(1), context=context, **values)
    again = strategy.fuse(session.members, 10, torch.Generator().manual_seed(1), context=context, **values)
    other = strategy.fuse(session.members, 10, torch.Generator().manual_seed(2), context=context, **values)
    assert first.images.shape == (10, 1, 16, 16)
    assert first.images.min() >= -1 and first.images.max() <= 1
    assert len(first.provenance) == 10 and all(first.provenance)
    assert torch.equal(first.images, again.images) and first.provenance == again.provenance
    assert not torch.equal(first.images, other.images)


def test_every_registered_strategy_is_covered():
    assert set(FUSIONS) == {"average", "weighted-average", "mixture", "vote", "refine", "guide", "soup"}
    for cls in FUSIONS.values():
        for param in cls.params:
            assert param.help, f"{cls.name}.{param.name} needs a help text for its GUI control"


def test_vote_with_k_1_equals_the_pool(session):
    members = session.members
    fused = fusion("vote").fuse(members, 9, torch.Generator().manual_seed(3), k=1)
    pool = torch.cat([members[name].sample(3, torch.Generator().manual_seed(3))
                      for name in ("dcgan", "vae", "diffusion")])
    assert torch.equal(fused.images, pool)
    assert fused.provenance == ("dcgan",) * 3 + ("vae",) * 3 + ("diffusion",) * 3


def test_vote_keeps_the_committees_best_and_quotas_keep_shares(session):
    vote = Vote()
    combined = torch.tensor([0.1, 0.9, 0.5, 0.8, 0.2, 0.7], dtype=torch.float64)
    owner = ["a", "a", "a", "b", "b", "b"]
    assert vote.select(combined, owner, ["a", "b"], 2, quotas=False).tolist() == [1, 3]
    assert vote.select(combined, owner, ["a", "b"], 2, quotas=True).tolist() == [1, 3]
    assert vote.select(combined, owner, ["a", "b"], 3, quotas=False).tolist() == [1, 3, 5]
    quota = vote.select(torch.tensor([0.9, 0.8, 0.7, 0.1, 0.2, 0.3], dtype=torch.float64), owner, ["a", "b"], 2, True)
    assert quota.tolist() == [0, 5]
    fused = vote.fuse(session.members, 12, torch.Generator().manual_seed(0), k=3, quotas=True)
    assert sorted(fused.provenance) == sorted(["dcgan"] * 4 + ["vae"] * 4 + ["diffusion"] * 4)
    assert fused.provenance == ("dcgan", "vae", "diffusion") * 4  # interleaved: a grid's rows mix members


def test_a_vote_is_interleaved_by_member():
    owner = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    combined = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.95, 0.1, 0.05, 0.01], dtype=torch.float64)
    keep = Vote().select(combined, owner, ["a", "b", "c"], 7, quotas=False)
    assert [owner[i] for i in keep.tolist()] == ["a", "b", "c", "a", "b", "a", "a"]
    assert sorted(keep.tolist()) == [0, 1, 2, 3, 4, 5, 8]


def test_vote_without_voters_is_refused(session):
    with pytest.raises(UserError, match="at least one voting member"):
        fusion("vote").fuse(session.members, 4, torch.Generator(), k=2, voters={"dcgan": 0.0, "vae": 0.0})
    with pytest.raises(UserError, match="diffusion cannot vote"):  # named, but has no realism score
        fusion("vote").fuse(session.members, 4, torch.Generator(), k=2, voters={"diffusion": 1.0})
    with pytest.raises(UserError, match="voter 'dcgn' is not a member"):  # misspelt: not silently dropped
        fusion("vote").fuse(session.members, 4, torch.Generator(), k=2, voters={"dcgn": 1.0, "vae": 1.0})


def test_fitted_mixture_weights_lie_on_the_simplex_and_are_no_worse_than_any_single_member(session):
    from engine.fusion.mixture import FIT_SEED
    from engine.metrics.frechet import feature_stats, frechet_from_stats

    found = {k: session.members[k] for k in ("dcgan", "vae", "diffusion")}
    context = context_of(session)
    weights = fit_weights(found, context, samples=200)
    assert sum(weights.values()) == pytest.approx(1.0) and all(w >= 0 for w in weights.values())
    assert len(simplex_grid(3)) == 231 and all(abs(w.sum() - 1) < 1e-12 for w in simplex_grid(3))
    # in the fit's own space, the fitted mixture is at least as close as each member alone
    stats = [feature_stats(context.features(m.sample(200, torch.Generator().manual_seed(FIT_SEED))))
             for m in found.values()]
    reference = feature_stats(context.fit_reference)
    fitted = frechet_from_stats(*mixture_stats(stats, np.array([weights[k] for k in found])), *reference)
    alone = [frechet_from_stats(*s, *reference) for s in stats]
    assert fitted <= min(alone) + 1e-9, (weights, fitted, alone)


def test_the_coarse_to_fine_search_finds_the_grid_point_an_exhaustive_search_finds():
    from engine.fusion.mixture import closest_mixture
    from engine.metrics.frechet import frechet_from_stats

    rng = np.random.default_rng(1)
    stats = []
    for _ in range(3):
        a = rng.normal(size=(4, 4))
        stats.append((rng.normal(size=4) * 3, a @ a.T + np.eye(4)))
    target = np.array([0.35, 0.45, 0.20])  # on the 5 % grid, off the 20 % one
    reference = mixture_stats(stats, target)
    found = closest_mixture(stats, reference)
    exhaustive = min(simplex_grid(3), key=lambda w: frechet_from_stats(*mixture_stats(stats, w), *reference))
    assert np.allclose(found, exhaustive) and np.allclose(found, target)
    assert closest_mixture(stats, reference, allowed=[True, True, False])[2] == 0


class _Gaussian:
    """A stand-in member whose 'images' are 2-d Gaussian points around ``centre``."""

    can_sample = True

    def __init__(self, centre: float):
        self.centre = centre

    def sample(self, n, generator, label=None):
        return torch.randn(n, 2, generator=generator, dtype=torch.float64) + self.centre


def test_fitted_mixture_weights_prefer_the_member_closer_to_the_reference():
    reference = np.random.default_rng(0).normal(0.0, 1.0, (4000, 2))
    context = FusionContext(features=lambda points: points.numpy(), fit_reference=reference)
    weights = fit_weights({"near": _Gaussian(0.0), "far": _Gaussian(3.0)}, context, samples=4000)
    assert weights["near"] >= 0.9 and weights["far"] <= 0.1, weights
    halfway = np.random.default_rng(1).normal(0.0, 1.0, (4000, 2))
    halfway[:2000] += 3.0  # half from each: the fit should say so
    context = FusionContext(features=lambda points: points.numpy(), fit_reference=halfway)
    weights = fit_weights({"near": _Gaussian(0.0), "far": _Gaussian(3.0)}, context, samples=4000)
    assert weights["near"] == pytest.approx(0.5, abs=0.1), weights


def test_mixture_statistics_match_sampled_mixture():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (40000, 3)), rng.normal(2, 0.5, (40000, 3))
    from engine.metrics.frechet import feature_stats

    w = np.array([0.3, 0.7])
    mu, sigma = mixture_stats([feature_stats(a), feature_stats(b)], w)
    pick = rng.random(40000) < 0.3
    mixed = np.where(pick[:, None], a, b)
    mu_s, sigma_s = feature_stats(mixed)
    assert np.allclose(mu, mu_s, atol=0.03) and np.allclose(sigma, sigma_s, atol=0.05)


def test_refine_needs_a_diffusion_member_and_soup_two_checkpoints(session):
    without = {k: v for k, v in session.members.items() if k != "diffusion"}
    with pytest.raises(UserError, match="needs a diffusion member"):
        fusion("refine").fuse(without, 2, torch.Generator(), strength=0.5, steps=2, source="auto")
    with pytest.raises(UserError, match="at least two checkpoints"):
        fusion("soup").fuse(session.members, 2, torch.Generator(), context=FusionContext(), member="vae",
                            checkpoints=3)


def test_soup_restores_the_members_own_weights(session):
    member = session.members["vae"]
    before = member.sample(4, torch.Generator().manual_seed(0))
    fusion("soup").fuse(session.members, 4, torch.Generator().manual_seed(0), context=context_of(session),
                        member="vae", checkpoints=3)
    assert torch.equal(member.sample(4, torch.Generator().manual_seed(0)), before)


def test_a_sample_records_what_the_strategy_settled_so_its_png_repeats_it(session, tmp_path):
    from engine.sampling import SampleRequest, sample_images

    soup = SampleRequest(run=session.run.path, fusion="soup", params={"member": "vae", "checkpoints": 20}, n=4)
    _, _, used = sample_images(session, soup)
    kept = len(list((session.run.path / "checkpoints").iterdir()))
    assert used["checkpoints"] == min(20, kept) < 20  # as many as the run keeps, not the 20 asked for


def test_mixture_auto_records_the_weights_it_fitted_and_they_make_the_same_images(session):
    mixture = fusion("mixture")
    fitted = mixture.fuse(session.members, 8, torch.Generator().manual_seed(5), context=context_of(session),
                          weights="auto")
    weights = fitted.settled["weights"]
    assert set(weights) == {"dcgan", "vae", "diffusion"} and sum(weights.values()) == pytest.approx(1.0)
    again = mixture.fuse(session.members, 8, torch.Generator().manual_seed(5), **mixture.validate({"weights": weights}))
    assert torch.equal(fitted.images, again.images) and again.settled == {}


class Collapsed:
    """A member that draws one image again and again (a collapsed GAN), and whose discriminator
    calls that image very real and every other image fake."""

    def __init__(self, like):
        self.like, self.can_sample, self.can_score, self.conditioned, self.one_pass = like, True, True, False, True

    def sample(self, n, generator, label=None):
        one = self.like.sample(1, torch.Generator().manual_seed(0))
        return one.expand(n, *one.shape[1:]).clone()

    def score(self, images, label=None):
        own = self.sample(1, None)[0]
        return torch.where((images == own).flatten(1).all(1), 100.0, -100.0)


@pytest.mark.parametrize("shares,most,pick", [("matched", 0, "ratio"), ("matched", 0, "herding"), ("auto", 0, "ratio"),
                                               ("even", 4, "ratio")])
def test_a_collapsed_member_cannot_fill_more_than_its_share_of_the_vote(session, shares, most, pick):
    members = {**session.members, "dcgan": Collapsed(session.members["dcgan"])}
    for voters in (None, {"dcgan": 1.0}):
        fused = fusion("vote").fuse(members, 12, torch.Generator().manual_seed(0), context=context_of(session),
                                    k=4, shares=shares, voters=voters, pick=pick)
        assert fused.provenance.count("dcgan") <= most
        assert len(fused.images) == 12
    committee = fusion("vote").fuse(members, 12, torch.Generator().manual_seed(0), k=4, shares="committee",
                                    voters={"dcgan": 1.0})
    assert committee.provenance == ("dcgan",) * 12  # what a committee across members lets it do


def test_the_default_vote_is_interleaved_and_each_member_ranked_among_its_own(session):
    fused = fusion("vote").fuse(session.members, 12, torch.Generator().manual_seed(0), k=3)  # no context: even
    assert fused.provenance == ("dcgan", "vae", "diffusion") * 4
    scores = torch.tensor([5.0, 1.0, 3.0, -10.0, -20.0, -15.0])
    from engine.fusion.vote import grouped_ranks
    ranks = grouped_ranks(scores, [torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])])
    assert ranks.tolist() == [1.0, 0.0, 0.5, 1.0, 0.0, 0.5]  # the second member's best is as good as the first's


def test_spread_passes_over_a_near_duplicate_of_a_kept_image():
    from engine.fusion.vote import pick_spread

    # five images about 5 apart, and a near twin of the best one
    features = np.array([[0.0, 0.0], [0.01, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0], [10.0, 0.0]])
    ranks = torch.tensor([1.0, 0.9, 0.5, 0.4, 0.3, 0.2], dtype=torch.float64)
    assert pick_spread(ranks, features, 2, 0.0).tolist() == [0, 1]  # realism alone: the twin
    assert pick_spread(ranks, features, 2, 1.0).tolist() == [0, 2]  # the twin loses about a whole rank


def test_shares_are_whole_numbers_that_add_up():
    from engine.fusion.vote import largest_remainders

    assert largest_remainders([0.5, 0.25, 0.25], 10) in ([5, 3, 2], [5, 2, 3])
    assert sum(largest_remainders([0.3333, 0.3333, 0.3334], 7)) == 7


def test_a_vote_for_one_image_with_a_tiny_pool_still_gives_one(session):
    fused = fusion("vote").fuse(session.members, 1, torch.Generator().manual_seed(0), context=context_of(session), k=2)
    assert len(fused.images) == 1 and len(fused.provenance) == 1


def test_guide_at_strength_0_is_plain_diffusion_bit_for_bit(session):
    guided = fusion("guide").fuse(session.members, 10, torch.Generator().manual_seed(4), strength=0.0, steps=0)
    plain = session.members["diffusion"].sample(10, torch.Generator().manual_seed(4))
    assert torch.equal(guided.images, plain)
    assert guided.provenance == ("guide(diffusion←dcgan)",) * 10  # auto: the DCGAN's D before the judge


def test_guide_moves_images_the_way_the_critic_prefers(session):
    diffusion = session.members["diffusion"]
    brightness = lambda images: images.flatten(1).mean(1)  # noqa: E731 - a critic that likes bright images
    plain = diffusion.sample(16, torch.Generator().manual_seed(5))
    guided = diffusion.sample_guided(16, torch.Generator().manual_seed(5), brightness, 1.0)
    assert float(brightness(guided).mean()) > float(brightness(plain).mean()) + 0.1
    assert guided.min() >= -1 and guided.max() <= 1


def test_guide_needs_a_sampler_to_steer_and_a_critic(session):
    assert fusion("guide").unavailable(["dcgan", "vae"]) == "needs a diffusion member in the run"
    assert fusion("guide").unavailable(["diffusion", "vae"]) == "needs a member that can judge images (dcgan or judge)"
    assert fusion("guide").unavailable(["diffusion", "judge"]) == ""
    without_critics = {k: m for k, m in session.members.items() if k in ("diffusion", "vae")}
    with pytest.raises(UserError, match="can judge images"):
        fusion("guide").fuse(without_critics, 2, torch.Generator(), strength=0.3, steps=2, critic="auto")


def test_a_vote_can_draw_the_diffusions_candidates_guided(session):
    plain = fusion("vote").fuse(session.members, 9, torch.Generator().manual_seed(6), k=1)
    steered = fusion("vote").fuse(session.members, 9, torch.Generator().manual_seed(6), k=1, guide=1.0, critic="judge")
    diffusion = [i for i, who in enumerate(plain.provenance) if who == "diffusion"]
    others = [i for i, who in enumerate(plain.provenance) if who != "diffusion"]
    assert plain.provenance == steered.provenance
    assert torch.equal(plain.images[others], steered.images[others])  # only the diffusion's candidates change
    assert not torch.equal(plain.images[diffusion], steered.images[diffusion])


@pytest.mark.parametrize("pick", ["ratio", "herding"])
def test_the_matched_vote_repeats_itself_for_a_seed(session, pick):
    vote = fusion("vote")
    assert vote.validate({})["shares"] == "matched" and vote.validate({})["pick"] == "herding"  # the defaults
    made = [vote.fuse(session.members, 12, torch.Generator().manual_seed(8), context=context_of(session), k=4,
                      pick=pick) for _ in range(2)]
    assert torch.equal(made[0].images, made[1].images) and made[0].provenance == made[1].provenance
    assert len(made[0].images) == 12


def test_the_context_remembers_one_pool_per_class_and_forgets_the_oldest_past_its_budget(monkeypatch):
    import engine.fusion.base as base

    calls = []
    context = FusionContext(features=lambda x: calls.append(len(x)) or x.flatten(1).double().numpy(),
                            fit_reference=np.zeros((2, 4)))
    pools = [torch.full((3, 1, 2, 2), float(c)) for c in range(10)]  # one pool per class
    for _ in range(2):  # the vote row, then the vote-ratio row
        for pool in pools:
            context.features_of(pool)
    assert len(calls) == 10
    monkeypatch.setattr(base, "RECENT_FEATURES_BYTES", 2 * 3 * 4 * 8)  # room for two pools' features
    context.features_of(torch.full((3, 1, 2, 2), 10.0))
    context.features_of(pools[9])
    context.features_of(pools[0])
    assert len(calls) == 12  # the newest kept, pool 9 with it; pool 0 forgotten


def test_the_context_computes_the_features_of_one_pool_once():
    """An evaluation's vote rows draw the same pool; the picking CNN sees it once."""
    calls = []
    context = FusionContext(features=lambda x: calls.append(len(x)) or x.flatten(1).double().numpy(),
                            fit_reference=np.zeros((2, 4)))
    images = torch.rand(5, 1, 2, 2)
    first, again = context.features_of(images), context.features_of(images.clone())
    assert calls == [5] and np.array_equal(first, again)
    assert np.array_equal(context.features_of(images + 1), (images + 1).flatten(1).double().numpy()) and calls == [5, 5]
