"""Every user-given value is validated once, with a message that names it."""
from __future__ import annotations

import pytest

from engine.members.registry import require_a_generator, run_config
from engine.errors import UserError


def config(**parts):
    raw = {"data": {}, "members": [{"kind": "vae"}], "train": {}}
    for key, value in parts.items():
        raw[key] = value
    return run_config(raw)


@pytest.mark.parametrize("parts,needle", [
    ({"members": [{"kind": "vae", "optim": {"lr": 0}}]}, "lr must be > 0.0"),
    ({"members": [{"kind": "vae", "optim": {"lr": "fast"}}]}, "lr must be a number"),
    ({"members": [{"kind": "vae", "optim": {"name": "rmsprop"}}]}, "adam, adamw, sgd"),
    ({"members": [{"kind": "vae", "batch_size": 0}]}, "batch_size must be >= 1"),
    ({"members": [{"kind": "vae", "params": {"beta": -1}}]}, "beta must be >= 0.0"),
    ({"members": [{"kind": "vae", "params": {"bogus": 1}}]}, "unknown key 'bogus'"),
    ({"members": [{"kind": "diffusion"}], "data": {"size": 30}}, "divisible by 4"),
    ({"members": [{"kind": "vae"}, {"kind": "vae"}]}, "each member may appear once"),
    ({"members": []}, "at least one member"),
    ({"data": {"channels": 2}}, "channels must be 1"),
    ({"train": {"device": "tpu"}}, "device must be one of"),
    ({"train": {"checkpoint_every": 0}}, "checkpoint_every must be >= 1"),
])
def test_bad_values_are_refused_with_a_reason(parts, needle):
    with pytest.raises(UserError, match=None) as caught:
        config(**parts)
    assert needle in str(caught.value)


def test_config_round_trips_through_its_dict():
    first = config(members=[{"kind": "dcgan", "optim": {"name": "sgd", "lr": 0.01}, "params": {"width": 16}}])
    again = run_config(first.to_dict())
    assert again == first and again.members[0].optim.name == "sgd" and again.members[0].params["width"] == 16


def test_a_run_an_artist_starts_needs_a_member_that_makes_images():
    alone = config(members=[{"kind": "judge"}])  # the library trains a judge alone (benchmarks, tests)…
    with pytest.raises(UserError, match="needs a member that makes images"):
        require_a_generator(alone)  # …the CLI and the window refuse it
    require_a_generator(config(members=[{"kind": "vae"}, {"kind": "judge"}]))


def test_a_data_folder_is_kept_absolute_and_a_config_files_is_beside_it(tmp_path, monkeypatch):
    from engine.config import load_config_file

    monkeypatch.chdir(tmp_path)
    assert config(data={"source": "pictures"}).data.source == str(tmp_path / "pictures")
    assert config().data.source == "fashion-mnist"
    (tmp_path / "configs").mkdir()
    file = tmp_path / "configs" / "c.toml"
    file.write_text('[data]\nsource = "../art"\n')
    raw = load_config_file("configs/c.toml")
    assert run_config({**raw, "members": [{"kind": "vae"}]}).data.source == str(tmp_path / "configs/../art")
