"""average, weighted-average and mixture: shape, range, provenance, determinism, weights."""
from __future__ import annotations

import pytest
import torch

from engine.errors import UserError
from engine.fusion.registry import fusion
from engine.session import Session


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    import numpy as np

    from engine.members.registry import run_config
    from tests.conftest import shapes_dataset, tiny_config_dict

    folder = tmp_path_factory.mktemp("fusion")
    images, labels = shapes_dataset()
    np.savez(folder / "d.npz", images=images, labels=labels)
    config = run_config(tiny_config_dict(folder / "d.npz", steps=3))
    session = Session.create(config, folder / "run")
    session.train(3)
    return session.members


@pytest.mark.parametrize("name,params", [("average", {}), ("weighted-average", {"weights": "dcgan:1,vae:2"}),
                                         ("mixture", {}), ("mixture", {"weights": "dcgan:1,vae:0,diffusion:1"})])
def test_fusion_shape_range_provenance_and_determinism(members, name, params):
    strategy = fusion(name)
    values = strategy.validate(params)
    first = strategy.fuse(members, 12, torch.Generator().manual_seed(3), **values)
    again = strategy.fuse(members, 12, torch.Generator().manual_seed(3), **values)
    assert first.images.shape == (12, 1, 16, 16)
    assert first.images.min() >= -1 and first.images.max() <= 1
    assert len(first.provenance) == 12 and torch.equal(first.images, again.images)
    assert first.provenance == again.provenance


def test_mixture_respects_zero_weights_and_each_image_is_a_members_own(members):
    strategy = fusion("mixture")
    only = strategy.fuse(members, 20, torch.Generator().manual_seed(0),
                         **strategy.validate({"weights": "dcgan:1,vae:0,diffusion:0"}))
    assert set(only.provenance) == {"dcgan"}

    drawn = {}  # each member's draw while fusing, with the generator state it was drawn from
    for name, member in members.items():
        def recording(n, generator, label=None, name=name, member=member):
            state = generator.get_state()
            images = type(member).sample(member, n, generator, label=label)
            drawn[name] = (state, images)
            return images
        member.sample = recording  # an instance attribute shadows the class's method
    try:
        fused = strategy.fuse(members, 20, torch.Generator().manual_seed(0),
                              **strategy.validate({"weights": "dcgan:1,vae:1,diffusion:0"}))
    finally:
        for member in members.values():
            del member.sample
    assert set(fused.provenance) == {"dcgan", "vae"} and set(drawn) == {"dcgan", "vae"}
    for name, (state, images) in drawn.items():
        slots = [i for i, who in enumerate(fused.provenance) if who == name]
        assert torch.equal(fused.images[slots], images)  # the images its provenance names are its own, in order
        again = members[name].sample(len(slots), torch.Generator().set_state(state))
        assert torch.equal(images, again)  # and they are what the member makes from that state
    assert torch.equal(only.images, members["dcgan"].sample(20, torch.Generator().set_state(
        _state_after_choice(20, 3))))


def _state_after_choice(n: int, members: int) -> torch.Tensor:
    """The generator's state once mixture has drawn which member makes each image (one multinomial)."""
    generator = torch.Generator().manual_seed(0)
    probs = torch.tensor([1.0] + [0.0] * (members - 1), dtype=torch.float64)
    torch.multinomial(probs, n, replacement=True, generator=generator)
    return generator.get_state()


def test_average_is_the_pixel_mean_of_members_for_the_same_seed(members):
    fused = fusion("average").fuse(members, 4, torch.Generator().manual_seed(5))
    parts = [m.sample(4, torch.Generator().manual_seed(5)) for m in members.values() if m.can_sample]
    torch.testing.assert_close(fused.images, (sum(parts) / len(parts)).clamp(-1, 1))


def test_bad_fusion_parameters_are_refused(members):
    with pytest.raises(UserError, match="no parameter 'k'"):
        fusion("average").validate({"k": "3"})
    with pytest.raises(UserError, match="not all be zero"):
        strategy = fusion("mixture")
        strategy.fuse(members, 4, torch.Generator(), **strategy.validate({"weights": "dcgan:0"}))
    with pytest.raises(UserError, match="unknown fusion"):
        fusion("blend")
