"""Training and metrics for model/guide pairs with extra arguments.

``model(x, shift)``: a linear-Gaussian model whose mean moves with a per-datum
covariate, ``x | z, shift ~ N(W z + B + shift, SP^2)``, so every quantity has
the closed form of :class:`metrics_models.LinearGaussian` at ``x - shift``.
Batches are tuples ``(x, shift)`` or dicts ``{"x": ..., "shift": ...}``.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from metrics_models import SP, B, LinearGaussian, W
from pyro.infer import Trace_ELBO

from pyromim import Trace_MIM
from pyromim.data.batches import batch_length, call_args, data_tensor, take
from pyromim.metrics import evaluate, log_likelihood, mutual_information
from pyromim.training import fit


def model(x, shift):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(W * z + B + shift, SP), obs=x)


def exact_guide(x, shift):
    var_x = LinearGaussian.var_x
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(W * (x - shift - B) / var_x, SP / math.sqrt(var_x)))


def _data(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    shift = 3.0 * torch.randn(n, generator=g)
    x = W * torch.randn(n, generator=g) + B + shift + SP * torch.randn(n, generator=g)
    return x, shift


def test_batch_helpers_index_every_tensor_of_the_batch_length_only():
    x, shift = _data(10)
    batch = (x, shift, torch.ones(3), None)
    part = take(batch, slice(4))
    assert torch.equal(part[0], x[:4]) and torch.equal(part[1], shift[:4])
    assert part[2].shape == (3,) and part[3] is None  # not per datum: passed through
    assert batch_length({"shift": shift[:7], "x": x}, data_arg="x") == 10
    assert call_args({"x": x}) == ((), {"x": x})
    with pytest.raises(ValueError, match="data_arg='y' names no entry"):
        data_tensor({"x": x}, "y")


@pytest.mark.parametrize("as_dict", [False, True])
def test_log_likelihood_of_a_batch_with_a_covariate_is_exact(as_dict):
    """With the exact posterior as proposal every importance weight equals p(x | shift)."""
    x, shift = _data()
    batch = {"x": x, "shift": shift} if as_dict else (x, shift)
    ll = log_likelihood(model, exact_guide, batch, num_samples=8, memory_budget=2**12)
    expected = LinearGaussian.log_marginal(x - shift)
    assert torch.allclose(ll.per_datum.float(), expected, atol=1e-4)


def test_evaluate_takes_a_tuple_batch_and_names_the_data_argument_once():
    """The tuple batch gives what the equivalent one-argument pair gives on ``x - shift``."""
    x, shift = _data(200)
    labels = (x - shift > B).long()
    pyro.set_rng_seed(1)
    tuple_metrics = evaluate(model, exact_guide, (x, shift), labels, num_samples=50, data_arg=0)
    pyro.set_rng_seed(1)
    plain = evaluate(LinearGaussian.model, LinearGaussian.exact_guide, x - shift, labels, num_samples=50)
    for key in ("nll", "mi_aggregate", "active_units", "knn5_accuracy", "recon_error", "consistency"):
        assert tuple_metrics[key] == pytest.approx(plain[key], rel=1e-4, abs=1e-5), key
    # KSG pairs the named data argument (x, not x - shift) with the code: it differs, and is finite
    assert math.isfinite(tuple_metrics["mi_ksg"])
    mi = mutual_information(exact_guide, {"x": x, "shift": shift}, num_samples=2)
    assert 0.0 < mi.mi <= mi.log_n_ceiling


def _learned_pair():
    def learned_model(x, shift):
        w = pyro.param("w", torch.tensor(0.5))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(w * z + B + shift, SP), obs=x)

    def learned_guide(x, shift):
        a = pyro.param("a", torch.tensor(0.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(a * (x - shift - B), 0.5))

    return learned_model, learned_guide


@pytest.mark.parametrize("loss", [Trace_ELBO(), Trace_MIM()], ids=["elbo", "mim"])
def test_fit_trains_a_pair_with_a_covariate_from_tuple_and_dict_data(tmp_path, loss):
    """The decoder weight ``w`` moves from 0.5 towards the true W = 2 (the data's
    spread around ``shift`` is only explained by ``w``); the loss falls."""
    x, shift = _data(512)
    results = {}
    for kind, data in (("tuple", (x, shift)), ("dict", {"x": x, "shift": shift})):
        with pyro.get_param_store().scope():
            learned_model, learned_guide = _learned_pair()
            result = fit(
                learned_model,
                learned_guide,
                loss,
                data,
                epochs=12,
                batch_size=64,
                lr=0.05,
                lr_schedule="constant",
                out_dir=tmp_path / kind,
                progress=False,
                clear_param_store=True,
                data_arg=0 if kind == "tuple" else "x",
            )
            results[kind] = (result.history, float(pyro.param("w").item()))
    for kind, (history, w) in results.items():
        assert history[-1]["train_loss"] < history[0]["train_loss"], kind
        assert w > 1.2, (kind, w)
    # the same batches in the same order: tuple and dict runs agree
    assert results["tuple"][1] == pytest.approx(results["dict"][1], rel=1e-5)


def test_fit_rejects_tensors_of_different_lengths(tmp_path):
    x, shift = _data(20)
    with pytest.raises(ValueError, match=r"same leading size.*\[10, 20\]"):
        fit(model, exact_guide, Trace_ELBO(), (x, shift[:10]), epochs=1, out_dir=tmp_path, progress=False)
