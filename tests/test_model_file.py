"""Saving and loading: identical outputs after a round trip; tampered files fail safely."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

import pyromim
from pyromim import CheckpointError, load_model, save_model
from pyromim.models.model_file import _checksum


@pytest.mark.parametrize("name", ["toy4", "digits_vampprior", "counts_negbin"])
def test_round_trip_gives_identical_outputs(tmp_path, name):
    torch.manual_seed(0)
    model = pyromim.build_model(name)
    with torch.no_grad():  # move every weight away from its initial value
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "model.pt"
    save_model(model, path)
    torch.manual_seed(123)  # a different init for the rebuilt model
    loaded = load_model(path)
    assert loaded.spec == model.spec
    x = torch.rand(5, *model.data_shape).round() if model.spec.data.kind != "continuous" else torch.randn(5, 2)
    if model.spec.data.kind == "counts":
        x = torch.poisson(torch.full((5, *model.data_shape), 2.0))
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), model.encode(x), rtol=0, atol=0)
        torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x), rtol=0, atol=0)
        z = torch.randn(4, model.latent_dim)
        torch.testing.assert_close(loaded.decode(z).log_prob(x[:4]), model.decode(z).log_prob(x[:4]), rtol=0, atol=0)
        torch.testing.assert_close(loaded.prior().log_prob(z), model.prior().log_prob(z), rtol=0, atol=0)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


def test_tampered_checkpoint_is_refused_without_running_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    model = pyromim.build_model("toy4")
    save_model(model, path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["extra"] = _Exploit()
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="refused to load: PyTorch's safe loading"):
        load_model(path)
    assert not (tmp_path / "pwned-by-checkpoint").exists()


def test_plain_pickle_is_refused(tmp_path):
    path = tmp_path / "pickle.pt"
    path.write_bytes(pickle.dumps({"format": "pyromim-model", "x": _Exploit()}))
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(path)


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    save_model(pyromim.build_model("toy4"), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(path.name)):
        load_model(path)


def test_weights_that_do_not_match_the_spec_are_refused(tmp_path):
    path = tmp_path / "model.pt"
    save_model(pyromim.build_model("toy4"), path)
    payload = torch.load(path, weights_only=True)
    payload["spec_toml"] = payload["spec_toml"].replace("hidden = [50]", "hidden = [40]", 1)
    # a consistent file (checksum recomputed) whose weights do not fit its spec
    payload["sha256"] = _checksum(payload["spec_toml"], payload["state_dict"])
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="weights do not match the embedded spec 'toy4'"):
        load_model(path)


def test_foreign_file_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a pyromim model checkpoint"):
        load_model(path)


def test_save_needs_a_spec(tmp_path):
    model = pyromim.build_model("toy4")
    model.spec = None
    with pytest.raises(ValueError, match="needs model.spec"):
        save_model(model, tmp_path / "m.pt")


def test_weights_edited_inside_the_file_are_refused(tmp_path):
    # A well-formed file whose tensors were changed after saving: it unpickles safely,
    # matches the spec's shapes, and would silently load other weights.
    path = tmp_path / "model.pt"
    save_model(pyromim.build_model("toy4"), path)
    payload = torch.load(path, weights_only=True)
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = payload["state_dict"][name] + 1.0
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(path)


def test_corrupted_tensor_bytes_are_refused(tmp_path):
    model = pyromim.build_model("toy4")
    with torch.no_grad():
        model.decoder.net[0].bias.fill_(1.2345)  # a byte pattern easy to find in the file
    path = tmp_path / "model.pt"
    save_model(model, path)
    data = bytearray(path.read_bytes())
    at = data.find(torch.tensor([1.2345]).numpy().tobytes())
    assert at > 0
    data[at + 1] ^= 0xFF  # one flipped byte inside the stored weights
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(path)


def test_any_unreadable_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "model.pt"
    save_model(pyromim.build_model("toy4"), path)
    original = path.read_bytes()
    rng = torch.Generator().manual_seed(0)
    refused = 0
    for trial in range(200):  # ~7% of 3-byte corruptions break the zip or pickle layout
        data = bytearray(original)
        for i in torch.randint(0, len(data), (3,), generator=rng).tolist():
            data[i] = torch.randint(0, 256, (), generator=rng).item()
        path.write_bytes(bytes(data))
        try:
            load_model(path)
        except CheckpointError:  # anything else (KeyError, TypeError ...) fails the test
            refused += 1
    assert refused > 100  # most corruptions hit the pickle, zip records or weights


@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_file_relabelled_without_its_checksum_is_refused(tmp_path, version):
    path = tmp_path / "model.pt"
    save_model(pyromim.build_model("toy4"), path)
    payload = torch.load(path, weights_only=True)
    del payload["sha256"]
    payload["format_version"] = version
    payload["state_dict"]["encoder.body.net.0.weight"][0, 0] = 1.2e36  # the tampering the checksum would catch
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="model.pt") as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_save_model_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    model = pyromim.build_model("toy4")
    path = tmp_path / "model.pt"
    save_model(model, path)
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model(model, path)
    assert path.read_bytes() == before  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
