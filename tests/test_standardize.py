"""[data] standardize: networks in standardised units, densities in the data's own units."""

import dataclasses
import math

import pyro
import pytest
import torch

from pyromim import build_model, load_model, save_model
from pyromim.blocks.likelihoods import GaussianLikelihood
from pyromim.data import toy4_20
from pyromim.experiments import evaluate_run, run
from pyromim.specs import SpecError, resolve_spec


def _standardized_spec(name="toy4_20", **model_changes):
    spec = resolve_spec(name)
    if model_changes:
        spec = spec.replace(model=dataclasses.replace(spec.model, **model_changes))
    return spec.replace(data=dataclasses.replace(spec.data, standardize=True))


def test_density_is_the_data_space_normal_and_the_encoder_sees_standard_units():
    lik = GaussianLikelihood((3,), scale="per_datum", min_scale=math.exp(-3.0), standardize=True).double()
    x = torch.tensor([[1.0, 100.0, -5.0], [3.0, 140.0, -5.0], [2.0, 60.0, -5.0]], dtype=torch.float64)
    lik.set_data_statistics(x)
    shift, spread = x.mean(0), x.std(0)
    spread[2] = 1.0  # an element that never varies keeps spread 1
    torch.testing.assert_close(lik.data_shift, shift)
    torch.testing.assert_close(lik.data_spread, spread)
    torch.testing.assert_close(lik.encoder_input(x), (x - shift) / spread)

    params = torch.randn(4, 2, 3, dtype=torch.float64)
    mu, raw = params[:, 0], params[:, 1]
    sigma = spread * (raw.exp() + math.exp(-3.0))
    loc = shift + spread * mu
    y = torch.randn(4, 3, dtype=torch.float64) * 10
    closed = (-0.5 * ((y - loc) / sigma) ** 2 - sigma.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(lik(params).log_prob(y), closed)
    torch.testing.assert_close(lik.point_estimate(params), loc)


def test_missing_or_malformed_statistics_are_refused():
    lik = GaussianLikelihood((3,), standardize=True)
    with pytest.raises(RuntimeError, match=r"no training statistics.*set_data_statistics"):
        lik.encoder_input(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"shape \(N >= 2, 3\), got \(5, 4\)"):
        lik.set_data_statistics(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="NaN or infinite"):
        lik.set_data_statistics(torch.tensor([[0.0, 1.0, float("nan")], [1.0, 2.0, 3.0]]))
    with pytest.raises(ValueError, match="needs standardize=True"):
        GaussianLikelihood((3,)).set_data_statistics(torch.zeros(4, 3))


def test_spec_key_only_for_gaussian_likelihoods():
    spec = resolve_spec("digits_normal")
    with pytest.raises(SpecError, match=r"'data.standardize' = true needs 'model.likelihood' = 'gaussian'"):
        spec.replace(data=dataclasses.replace(spec.data, standardize=True))
    text = _standardized_spec().to_toml()
    assert "standardize = true" in text


def test_statistics_travel_with_the_saved_model(tmp_path):
    model = build_model(_standardized_spec())
    x = toy4_20(n_train=500, n_val=0, n_test=0, seed=3).train.x
    model.likelihood.set_data_statistics(x)
    save_model(model, tmp_path / "m.pt")
    again = load_model(tmp_path / "m.pt")
    torch.testing.assert_close(again.likelihood.data_shift, model.likelihood.data_shift)
    torch.testing.assert_close(again.likelihood.data_spread, model.likelihood.data_spread)
    torch.testing.assert_close(
        again.decode(torch.zeros(2, 20)).log_prob(x[:2]), model.decode(torch.zeros(2, 20)).log_prob(x[:2])
    )


def test_run_sets_the_training_statistics_and_the_checkpoint_restores_them(tmp_path):
    spec = _standardized_spec(latent_dim=4)
    result = run(
        spec,
        out_dir=tmp_path / "run",
        epochs=2,
        n_train=300,
        n_val=100,
        n_test=100,
        num_samples=10,
        plots=False,
        progress=False,
        seed=2,
    )
    train_x = result.data.train.x.double()
    torch.testing.assert_close(result.model.likelihood.data_shift, train_x.mean(0).float())
    torch.testing.assert_close(result.model.likelihood.data_spread, train_x.std(0).float())
    pyro.clear_param_store()  # the trained model's parameters are still in Pyro's global store
    from_dir = evaluate_run(tmp_path / "run", num_samples=10)
    from_ckpt = evaluate_run(tmp_path / "run" / "checkpoints" / "best.ckpt", num_samples=10)
    assert from_dir.metrics == pytest.approx(from_ckpt.metrics, rel=1e-5)
    # the dims 2-19 of toy4_20 lie 10s apart: a reconstruction in data units, not standard units
    assert from_dir.metrics["recon_error"] == pytest.approx(result.metrics["recon_error"], rel=1e-5)
