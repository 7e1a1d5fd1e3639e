"""Members that learn RGBA in premultiplied alpha: conversions at their edges, settling, old runs."""
from __future__ import annotations

import pytest
import torch

from engine.config import DataConfig, MemberConfig
from engine.members.alpha import INVISIBLE, NEW_RUN_ALPHA, premultiply, settle_alpha, unpremultiply
from engine.members.registry import MEMBERS

PREMULTIPLYING = ("dcgan", "diffusion")
SHAPE = (4, 16, 16)


def rgba(n: int = 6, seed: int = 0) -> torch.Tensor:
    """Straight-alpha RGBA in [-1, 1] as a decoded file has it: some pixels fully transparent (and black)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, *SHAPE, generator=g) * 2 - 1
    hidden = torch.rand(n, 1, *SHAPE[1:], generator=g) < 0.3
    images[:, 3:] = torch.where(hidden, -1.0, images[:, 3:])
    images[:, :3] = torch.where(hidden, -1.0, images[:, :3])
    return images


def build(kind: str, alpha: str, shape=SHAPE):
    cls = MEMBERS[kind]
    config = MemberConfig(kind, cls.default_optim, 4, {**cls.tiny_params, "alpha": alpha})
    return cls(config, shape, 0, torch.device("cpu"), 0)


def test_the_members_that_premultiply_say_so():
    assert {kind for kind, cls in MEMBERS.items() if cls.can_premultiply} == set(PREMULTIPLYING)


def test_premultiplied_and_back_is_the_image_where_it_shows_and_black_where_it_does_not():
    images = rgba()
    back = unpremultiply(premultiply(images))
    opacity = (images[:, 3:] + 1) / 2
    shows = (opacity >= INVISIBLE).expand_as(images)
    assert torch.allclose(back[shows], images[shows], atol=1e-5)
    hidden = ~shows[:, :3]
    assert torch.equal(back[:, :3][hidden], torch.full_like(back[:, :3][hidden], -1.0))
    assert torch.allclose(back[:, 3:], images[:, 3:], atol=1e-6)  # opacity itself is kept
    # premultiplied colour fades with opacity: half-opaque white is mid grey, transparent is black
    edge = torch.tensor([1.0, 1.0, 1.0, 0.0]).view(1, 4, 1, 1)
    assert torch.allclose(premultiply(edge)[0, :, 0, 0], torch.tensor([0.0, 0.0, 0.0, 0.0]))
    # a generator's colour beyond its opacity is clamped, not amplified past white
    assert unpremultiply(torch.tensor([0.5, 0.5, 0.5, -0.5]).view(1, 4, 1, 1)).max() <= 1.0


def test_auto_is_premultiplied_on_rgba_only_and_an_old_run_stays_straight():
    assert settle_alpha({"alpha": "auto"}, 4)["alpha"] == NEW_RUN_ALPHA == "premultiplied"
    assert settle_alpha({"alpha": "auto"}, 3)["alpha"] == "straight"
    assert settle_alpha({"alpha": "straight"}, 4)["alpha"] == "straight"
    for kind in PREMULTIPLYING:
        cls = MEMBERS[kind]
        settled = cls.settle_params({p.name: p.default for p in cls.params}, 1_000,
                                    DataConfig(source="x", size=16, channels=4))
        assert settled["alpha"] == "premultiplied"
        assert build(kind, "premultiplied").premultiplied
        assert not build(kind, "auto").premultiplied  # a run.json from before the parameter
        assert not build(kind, "premultiplied", (3, 16, 16)).premultiplied  # nothing to multiply


@pytest.mark.parametrize("kind", PREMULTIPLYING)
def test_samples_come_out_in_straight_alpha(kind):
    member = build(kind, "premultiplied")
    images = member.sample(8, torch.Generator().manual_seed(0))
    opacity = (images[:, 3:] + 1) / 2
    invisible = (opacity < INVISIBLE).expand(-1, 3, -1, -1)
    assert images.shape == (8, *SHAPE) and images.min() >= -1 and images.max() <= 1
    assert torch.equal(images[:, :3][invisible], torch.full_like(images[:, :3][invisible], -1.0))
    # the same weights, read as straight alpha, are the premultiplied member's output before conversion
    straight = build(kind, "straight")
    straight.load_state_dict(member.state_dict())
    raw = straight.sample(8, torch.Generator().manual_seed(0))
    assert torch.allclose(images, unpremultiply(raw), atol=1e-6)


def test_a_premultiplied_discriminator_judges_the_premultiplied_image():
    member, straight = build("dcgan", "premultiplied"), build("dcgan", "straight")
    straight.load_state_dict(member.state_dict())
    images = rgba()
    assert torch.allclose(member.score(images), straight.score(premultiply(images)), atol=1e-5)


def test_a_premultiplied_diffusion_trains_on_and_refines_straight_images_in_its_own_alpha():
    member, straight = build("diffusion", "premultiplied"), build("diffusion", "straight")
    straight.load_state_dict(member.state_dict())
    images = rgba()
    # refining with almost no noise gives the image back: in and out of its alpha on the way
    refined = member.refine(images, 1e-4, 1, torch.Generator().manual_seed(0))
    shows = ((images[:, 3:] + 1) / 2 > 0.05).expand_as(images)
    assert (refined - images)[shows].abs().max() < 0.05
    # and it is the straight member's refinement of the premultiplied image, converted back
    expected = unpremultiply(straight.refine(premultiply(images), 0.5, 2, torch.Generator().manual_seed(1)))
    assert torch.allclose(member.refine(images, 0.5, 2, torch.Generator().manual_seed(1)), expected, atol=1e-5)


@pytest.mark.parametrize("kind", PREMULTIPLYING)
def test_training_sees_the_premultiplied_batch(kind):
    from engine.data.dataset import Batch

    member, straight = build(kind, "premultiplied"), build(kind, "straight")
    straight.load_state_dict(member.state_dict())
    images = rgba(4)
    losses = [float(loss.loss.detach()) for loss in member.losses(Batch(images, None))]
    expected = [float(loss.loss.detach()) for loss in straight.losses(Batch(premultiply(images), None))]
    assert losses == pytest.approx(expected, rel=1e-5)


def test_guide_at_strength_zero_is_plain_sampling_in_premultiplied_alpha_too():
    member = build("diffusion", "premultiplied")
    critic = lambda x: x.mean(dim=(1, 2, 3))  # noqa: E731
    plain = member.sample(4, torch.Generator().manual_seed(3))
    assert torch.equal(member.sample_guided(4, torch.Generator().manual_seed(3), critic, 0.0), plain)
    guided = member.sample_guided(4, torch.Generator().manual_seed(3), critic, 1.0)
    assert guided.min() >= -1 and guided.max() <= 1 and not torch.equal(guided, plain)
