"""Widths set to "auto" are sized for the image size within a compute budget (engine/members/sizing.py)."""
from __future__ import annotations

import pytest
import torch

from engine.config import DataConfig, MemberConfig, Param
from engine.errors import UserError
from engine.members.registry import MEMBERS
from engine.members.sizing import GROWTH, REFERENCE_SIZE, _fixed, step_flops

SIZED = [kind for kind, cls in MEMBERS.items() if cls.sized]


def settle(cls, size, channels=4):
    defaults = {p.name: p.default for p in cls.params}
    return cls.settle_params(defaults, 1_000, DataConfig(source="x", size=size, channels=channels))


def test_an_auto_number_takes_auto_or_a_number_in_range():
    param = Param("width", "auto", 4, 512, auto=int)
    assert param.validate("auto", "w") == "auto" and param.validate(" AUTO ", "w") == "auto"
    assert param.validate(48, "w") == 48 and param.validate("48", "w") == 48
    with pytest.raises(UserError, match="must be auto or an integer"):
        param.validate("wide", "[members.vae]")
    with pytest.raises(UserError, match="must be auto or >= 4"):
        param.validate(2, "[members.vae]")


def test_the_generators_size_their_width():
    assert set(SIZED) >= {"dcgan", "vae", "diffusion"}


@pytest.mark.parametrize("kind", SIZED)
def test_measured_sizes_keep_the_measured_width(kind):
    cls = MEMBERS[kind]
    for size, channels in [(28, 1), (32, 4), (16, 3)]:
        assert settle(cls, size, channels)["width"] == cls.sized["width"]


@pytest.mark.parametrize("kind", SIZED)
def test_a_large_image_gets_a_narrower_member_within_the_budget(kind):
    cls = MEMBERS[kind]
    large = settle(cls, 64)
    assert isinstance(large["width"], int) and large["width"] < cls.sized["width"]
    budget = GROWTH * step_flops(cls, _fixed(settle(cls, REFERENCE_SIZE)), (), REFERENCE_SIZE, 4)
    assert step_flops(cls, _fixed(large), (), 64, 4) <= budget
    wider = {**large, "width": large["width"] + 8}  # the next width up would break the budget
    assert step_flops(cls, _fixed(wider), (), 64, 4) > budget


def test_a_width_given_as_a_number_is_kept():
    cls = MEMBERS["vae"]
    defaults = {p.name: p.default for p in cls.params}
    assert cls.settle_params({**defaults, "width": 40}, 1_000, DataConfig(source="x", size=64, channels=4))["width"] == 40


def test_an_unsettled_auto_builds_the_measured_default():
    cls = MEMBERS["vae"]
    params = {p.name: p.default for p in cls.params}
    member = cls(MemberConfig(kind="vae", params=params), (1, 16, 16), 0, torch.device("cpu"), 0)
    assert member.p["width"] == cls.sized["width"]
