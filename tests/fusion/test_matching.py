"""The matched vote's selection (engine/fusion/matching.py): herding and resampling towards the
reference, the gate on weak members, determinism."""
import numpy as np
import torch

from engine.fusion.matching import herd, matched_keep, ratio_logits, resample, taking_part
from engine.metrics.frechet import frechet_distance


def clusters(seed: int = 0):
    rng = np.random.default_rng(seed)
    real = rng.normal(0.0, 1.0, (300, 4))
    near = rng.normal(0.0, 1.0, (200, 4))    # a member drawing like the real images
    off = rng.normal(3.0, 1.0, (200, 4))     # a member drawing elsewhere
    return real, near, off


def test_the_ratio_is_higher_where_the_real_images_are():
    real, near, off = clusters()
    logits = ratio_logits(real, np.concatenate([near, off]))
    assert logits[:200].mean() > logits[200:].mean() + 1


def test_resampling_is_deterministic_for_a_seed_and_without_repeats():
    logits = np.linspace(-2, 2, 100)
    first = resample(logits, 30, torch.Generator().manual_seed(3))
    again = resample(logits, 30, torch.Generator().manual_seed(3))
    assert np.array_equal(first, again) and len(set(first.tolist())) == 30
    assert logits[first].mean() > logits.mean()  # the likelier images are kept more often


def test_a_member_far_worse_than_the_best_takes_no_part():
    real, near, off = clusters()
    features = np.concatenate([near, off])
    groups = [torch.arange(0, 200), torch.arange(200, 400)]
    assert taking_part(features, groups, real, 50, [True, True]) == [True, False]
    assert taking_part(features, groups, real, 50, [False, True]) == [False, True]  # the only one left


def test_the_next_closest_member_joins_when_the_best_cannot_fill_the_batch():
    real, near, off = clusters()
    features = np.concatenate([near[:20], off])
    groups = [torch.arange(0, 20), torch.arange(20, 220)]
    assert taking_part(features, groups, real, 50, [True, True]) == [True, True]
    keep = matched_keep(features, groups, real, 50, torch.Generator().manual_seed(0), [True, True])
    assert len(keep) == 50 and len(set(keep.tolist())) == 50


def test_the_kept_images_are_closer_to_the_reference_than_the_pool():
    real, near, off = clusters()
    mixed = np.concatenate([near[:100], off[:100] * 0.3])  # one member: half good, half shrunk away
    groups = [torch.arange(0, 200)]
    keep = matched_keep(mixed, groups, real, 60, torch.Generator().manual_seed(0), [True])
    assert len(keep) == 60 and len(set(keep.tolist())) == 60
    assert frechet_distance(mixed[keep.numpy()], real) < frechet_distance(mixed, real)


def test_a_pool_too_spread_out_is_resampled_to_the_reference_spread():
    """Same mean, twice the spread: only the quadratic terms can tell (a linear ratio is flat)."""
    rng = np.random.default_rng(1)
    real = rng.normal(0.0, 1.0, (400, 6))
    pool = rng.normal(0.0, 2.0, (4000, 6))
    draws = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    linear = resample(ratio_logits(real, pool, quadratic=0), 400, draws())
    quadratic = resample(ratio_logits(real, pool), 400, draws())
    assert pool[quadratic].std() < 0.8 * pool[linear].std()
    assert frechet_distance(pool[quadratic], real) < 0.5 * frechet_distance(pool[linear], real)


def shifted_and_spread(seed: int = 2):
    """Held-out images, a test set from the same distribution, and a pool drawn off their mean with 1.6×
    their spread (a generator's typical miss)."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(8, 8)) / 4
    real = rng.normal(size=(300, 8)) @ mixing + 1.0
    test = rng.normal(size=(300, 8)) @ mixing + 1.0
    pool = rng.normal(size=(2000, 8)) @ (1.6 * mixing) + 0.5
    return real, test, pool


def test_herding_needs_no_draw_and_keeps_each_candidate_once():
    real, _, pool = shifted_and_spread()
    groups = [torch.arange(len(pool))]
    first = matched_keep(pool, groups, real, 250, torch.Generator().manual_seed(0), [True], pick="herding")
    other = matched_keep(pool, groups, real, 250, torch.Generator().manual_seed(1), [True], pick="herding")
    assert torch.equal(first, other) and len(set(first.tolist())) == 250
    assert np.array_equal(herd(pool, real, 250), herd(pool, real, 250))


def test_herding_follows_the_reference_closer_than_the_ratio_draw():
    real, test, pool = shifted_and_spread()
    groups = [torch.arange(len(pool))]
    herded = matched_keep(pool, groups, real, 250, torch.Generator().manual_seed(0), [True], pick="herding")
    drawn = [matched_keep(pool, groups, real, 250, torch.Generator().manual_seed(seed), [True], pick="ratio")
             for seed in range(3)]
    distance = lambda keep: frechet_distance(pool[keep], test)  # noqa: E731  (images the picking never saw)
    assert distance(herded.numpy()) < 0.8 * min(distance(d.numpy()) for d in drawn)
    assert distance(herded.numpy()) < 0.6 * distance(np.arange(250))


def test_herding_keeps_the_spread_instead_of_the_nearest_images():
    """The kernel is broad: the kept set narrows towards the reference's spread (the pool's is 1.6×), but
    is no tight knot of the candidates nearest the reference's middle."""
    real, _, pool = shifted_and_spread()
    kept = pool[herd(pool, real, 250)]
    assert 0.8 * real.std(0).mean() < kept.std(0).mean() < 0.85 * pool.std(0).mean()
