"""A damaged or foreign run folder gives one clear line naming the file and the problem; nothing in
it is overwritten, and nothing from it is ever unpickled."""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin
from safetensors.torch import load_file, save_file

from engine.cli import main
from engine.session import Session
from tests.test_cli import write_config

pytestmark = pytest.mark.reliability


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A tiny trained run (dcgan + vae, two checkpoints) and one sampled PNG, made once."""
    from tests.conftest import shapes_dataset

    folder = tmp_path_factory.mktemp("pristine")
    images, labels = shapes_dataset()
    np.savez(folder / "shapes.npz", images=images, labels=labels)
    assert main(["train", "--data", str(folder / "shapes.npz"), "--size", "16", "--steps", "4", "--out",
                 str(folder / "run"), "--device", "cpu", "--config", str(write_config(folder, ("dcgan", "vae"))),
                 "--checkpoint-every", "2", "--log-every", "2", "--quiet"]) == 0
    assert main(["sample", str(folder / "run"), "--member", "vae", "--n", "4", "--out", str(folder / "a.png")]) == 0
    return folder


@pytest.fixture
def run(pristine, tmp_path) -> Path:
    shutil.copytree(pristine / "run", tmp_path / "run")
    return tmp_path / "run"


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(args: list[str], capsys) -> str:
    """Run the CLI; it must exit 2 with one line on stderr. Returns that line."""
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("chorus: error:") and "Traceback" not in err, err
    return err


def latest(run: Path) -> Path:
    return run / "checkpoints" / "step-0000004"


def check_every_command_refuses(run: Path, capsys, *needles: str) -> None:
    before = fingerprint(run)
    for args in (["resume", run, "--steps", "6", "--quiet"],
                 ["sample", run, "--member", "vae", "--n", "4", "--out", run.parent / "out.png"]):
        err = refused(args, capsys)
        for needle in needles:
            assert needle in err, (needle, err)
    assert fingerprint(run) == before  # nothing overwritten, not even the loss log
    assert not (run.parent / "out.png").exists()


def test_truncated_safetensors(run, capsys):
    file = latest(run) / "vae.safetensors"
    file.write_bytes(file.read_bytes()[:300])
    check_every_command_refuses(run, capsys, str(file), "is damaged", "step-0000002")  # the older one is named


def test_garbage_safetensors(run, capsys):
    file = latest(run) / "dcgan.safetensors"
    file.write_bytes(b"\xff" * 8 + b"{not a header" + bytes(200))
    check_every_command_refuses(run, capsys, str(file), "is damaged")


def test_missing_safetensors(run, capsys):
    (latest(run) / "vae.safetensors").unlink()
    check_every_command_refuses(run, capsys, "checkpoint file missing", "vae.safetensors")


def test_tensors_of_the_wrong_shape_for_the_config(run, capsys):
    document = json.loads((run / "run.json").read_text())
    vae = next(m for m in document["config"]["members"] if m["kind"] == "vae")
    vae["params"]["width"] = 16  # the config now wants twice the channels the checkpoint holds
    (run / "run.json").write_text(json.dumps(document))
    check_every_command_refuses(run, capsys, str(latest(run) / "vae.safetensors"), "does not fit member 'vae'",
                                "size mismatch")


def test_optimizer_state_of_the_wrong_shape(run, capsys):
    file = latest(run) / "vae.safetensors"
    tensors = load_file(str(file))
    key = next(k for k in tensors if ".exp_avg" in k and tensors[k].dim() > 1)
    tensors[key] = torch.zeros(tensors[key].numel() + 1)
    save_file(tensors, str(file))
    err = refused(["resume", run, "--quiet"], capsys)
    assert str(file) in err and "optimizer 'vae' state 'exp_avg' has shape" in err


@pytest.mark.parametrize("content,needle", [
    (b"\x00\x01garbage", "run.json is damaged"),
    (b'{"schema": 1}', "run.json is damaged: no config"),
    (b"[1, 2, 3]", "run.json is damaged: no config"),
    (b'{"schema": "one", "config": {}}', "run.json is damaged: schema version 'one'"),
])
def test_garbage_run_json(run, capsys, content, needle):
    (run / "run.json").write_bytes(content)
    check_every_command_refuses(run, capsys, needle)


def test_missing_run_json(run, capsys):
    (run / "run.json").unlink()
    check_every_command_refuses(run, capsys, "is not a Chorus run folder (no run.json)")


def test_run_from_a_newer_schema(run, capsys):
    document = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**document, "schema": 99}))
    check_every_command_refuses(run, capsys, "newer Chorus (schema 99)", "Update Chorus")


def test_run_whose_member_no_longer_exists(run, capsys):
    document = json.loads((run / "run.json").read_text())
    document["config"]["members"][0]["kind"] = "gan9"  # a member kind this Chorus does not have
    (run / "run.json").write_text(json.dumps(document))
    check_every_command_refuses(run, capsys, str(run / "run.json"), "unknown member 'gan9'")


def test_checkpoint_whose_member_is_not_in_the_run(run, capsys):
    document = json.loads((run / "run.json").read_text())
    document["config"]["members"] = [m for m in document["config"]["members"] if m["kind"] != "dcgan"]
    (run / "run.json").write_text(json.dumps(document))
    check_every_command_refuses(run, capsys, "holds member(s) dcgan that run.json does not list")


def test_damaged_state_json(run, capsys):
    (latest(run) / "state.json").write_text('{"step": 4, "members": ')
    check_every_command_refuses(run, capsys, "state.json is damaged")


def png_with(source: Path, out: Path, text: str | None) -> Path:
    info = PngImagePlugin.PngInfo()
    if text is not None:
        info.add_itxt("chorus", text)
    with Image.open(source) as image:
        image.save(out, pnginfo=info)
    return out


@pytest.mark.parametrize("edit,needle", [
    (lambda meta: "{not json", "are damaged"),
    (lambda meta: None, "carries no Chorus parameters"),
    (lambda meta: json.dumps([meta]), "damaged: not an object"),
    (lambda meta: json.dumps({k: v for k, v in meta.items() if k != "seed"}), "must be integers"),
    (lambda meta: json.dumps({**meta, "n": "many"}), "must be integers"),
    (lambda meta: json.dumps({**meta, "n": -3}), "--n must be between 1"),
    (lambda meta: json.dumps({**meta, "member": 7}), "member 7 is not a name"),
    (lambda meta: json.dumps({**meta, "checkpoint": "../../../etc"}), "is not a step-NNNNNNN folder name"),
    (lambda meta: json.dumps({**meta, "checkpoint": "step-0000999"}), "no longer exists"),
    (lambda meta: json.dumps({**meta, "params": "garbage"}), "are damaged"),
])
def test_png_with_damaged_parameters(pristine, run, tmp_path, capsys, edit, needle):
    with Image.open(pristine / "a.png") as image:
        meta = json.loads(image.text["chorus"])
    meta["run"] = str(run)
    damaged = png_with(pristine / "a.png", tmp_path / "damaged.png", edit(meta))
    before = damaged.read_bytes()
    err = refused(["sample", "--from-png", damaged, "--out", tmp_path / "again.png"], capsys)
    assert str(damaged) in err and needle in err, err
    assert damaged.read_bytes() == before and not (tmp_path / "again.png").exists()


def test_no_pickle_is_ever_loaded_from_a_run(run, pristine, tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    real_np_load = np.load

    def np_load(*args, **kwargs):
        assert not kwargs.get("allow_pickle", False), "np.load with allow_pickle"
        return real_np_load(*args, **kwargs)

    for target, name in ((torch, "load"), (torch.serialization, "load"), (pickle, "load"), (pickle, "loads"),
                         (pickle, "Unpickler")):
        monkeypatch.setattr(target, name, forbidden)
    monkeypatch.setattr(np, "load", np_load)
    assert main(["resume", str(run), "--steps", "6", "--quiet"]) == 0
    assert main(["sample", str(run), "--fusion", "soup", "--param", "member=vae", "--n", "4",
                 "--out", str(tmp_path / "s.png")]) == 0
    assert main(["sample", "--from-png", str(tmp_path / "s.png"), "--out", str(tmp_path / "t.png")]) == 0
    assert main(["evaluate", str(run), "--n", "10", "--judge-steps", "2", "--fusions", "average,soup",
                 "--json"]) == 0
    session = Session.open(run, "cpu", with_data=False)
    assert session.step == 6
