"""The sample bank: prefix-consistent member sampling lets strategies reuse a seed's images."""
from __future__ import annotations

import torch

from engine.fusion.bank import SampleBank
from engine.fusion.registry import fusion
from tests.fusion.test_strategies import session  # noqa: F401 - shared tiny trained run


def test_sampling_n_is_a_prefix_of_sampling_more(session):  # noqa: F811
    for name in ("dcgan", "vae", "diffusion"):
        member = session.members[name]
        few = member.sample(70, torch.Generator().manual_seed(4))
        many = member.sample(130, torch.Generator().manual_seed(4))
        torch.testing.assert_close(few, many[:70], rtol=0, atol=1e-5)


def test_bank_serves_smaller_requests_and_gives_the_same_fusion(session):  # noqa: F811
    members = session.members
    plain = fusion("vote").fuse(members, 12, torch.Generator().manual_seed(9), k=3)
    bank = SampleBank()
    with bank.attached(members):
        bank.prefill(members, 12, torch.Generator().manual_seed(9).get_state())
        cached = fusion("vote").fuse(members, 12, torch.Generator().manual_seed(9), k=3)
        average = fusion("average").fuse(members, 12, torch.Generator().manual_seed(9))
    assert bank.misses == 3 and bank.hits == 6  # one draw per member served the pool and the average
    assert plain.provenance == cached.provenance
    torch.testing.assert_close(plain.images, cached.images, rtol=0, atol=1e-5)
    assert average.images.shape == (12, 1, 16, 16)
    assert "sample" not in vars(members["dcgan"])  # detached afterwards


def test_soup_is_not_served_from_the_bank(session):  # noqa: F811
    from tests.fusion.test_strategies import context_of

    members = session.members
    context = context_of(session)
    plain = fusion("soup").fuse(members, 6, torch.Generator().manual_seed(2), context=context, member="vae",
                                checkpoints=3)
    bank = SampleBank()
    with bank.attached(members):
        members["vae"].sample(6, torch.Generator().manual_seed(2))
        souped = fusion("soup").fuse(members, 6, torch.Generator().manual_seed(2), context=context,
                                     member="vae", checkpoints=3)
    torch.testing.assert_close(plain.images, souped.images)
