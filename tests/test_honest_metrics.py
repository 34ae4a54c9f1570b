"""Metrics that say how far to trust them: standard errors of the MI and consistency estimates, and
NLLs marked unreliable in tables and figures when PSIS k-hat says the importance sampling failed."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from pyromim.experiments.report import UNRELIABLE_MARK, comparison_table, metrics_table
from pyromim.metrics import generation_consistency, mutual_information, nll_unreliable

REPEATS = 40  # the sample std over 40 repeats is within about 11% (1 / sqrt(2 * 39)) of the true spread


def gaussian_encoder(scale):
    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x, scale).to_event(1))

    return guide


@pytest.mark.parametrize("num_samples", [1, 3])
def test_the_aggregate_mi_standard_error_matches_the_spread_over_data_sets(num_samples):
    estimates, errors = [], []
    for seed in range(REPEATS):
        torch.manual_seed(seed)
        result = mutual_information(gaussian_encoder(0.5), torch.randn(200, 2), num_samples, memory_budget=2**14)
        estimates.append(result.mi)
        errors.append(result.stderr)
    # measured: std 0.079 vs SE 0.085 (one draw), 0.060 vs 0.066 (three); 0.7..1.4 is about 3 sd of the ratio
    assert 0.7 < np.std(estimates, ddof=1) / np.mean(errors) < 1.4


def linear_gaussian_pair(c, a=1.5, s=0.8):
    def model(x):
        with pyro.plate("data", x.shape[-2]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
            pyro.sample("x", dist.Normal(a * z, s).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[-2]):
            pyro.sample("z", dist.Normal(c * x, 0.3).to_event(1))

    return model, guide


@pytest.mark.parametrize("c", [0.3, 0.0, 1.0])
def test_the_consistency_standard_error_matches_the_spread_over_draws(c):
    estimates, errors = [], []
    for seed in range(REPEATS):
        pyro.set_rng_seed(seed)
        result = generation_consistency(*linear_gaussian_pair(c), torch.zeros(200, 1))
        estimates.append(result.r2)
        errors.append(result.stderr)
    # measured: 0.022 vs 0.020 (c = 0.3), 0.0079 vs 0.0094 (c = 0: R^2 noise around 0), 0.13 vs 0.10 (c = 1)
    assert 0.7 < np.std(estimates, ddof=1) / np.mean(errors) < 1.4


def metrics(khat=0.1, mi=0.5, mi_se=0.03, consistency=0.9, consistency_se=0.02):
    return {
        "nll": 3.6,
        "nll_bits_per_dim": 2.6,
        "psis_khat_bad_fraction": khat,
        "mi_aggregate": mi,
        "consistency": consistency,
        "mi_aggregate_se": mi_se,
        "consistency_se": consistency_se,
    }


def rows(table):
    return {line.split()[0]: line for line in table.splitlines()[2:]}


def test_nll_unreliable_above_three_tenths_of_bad_items():
    assert nll_unreliable(0.31) and nll_unreliable(1.0)
    assert not nll_unreliable(0.3) and not nll_unreliable(0.0)
    assert not nll_unreliable(None) and not nll_unreliable(float("nan"))


def test_the_metrics_table_marks_an_unreliable_nll_and_explains_negative_estimates():
    good = rows(metrics_table(metrics(khat=0.29)))
    assert UNRELIABLE_MARK not in good["nll"] and "below 0" not in good["consistency"]
    bad = rows(metrics_table(metrics(khat=0.69, mi=-0.04, consistency=-0.03, consistency_se=0.02)))
    for key in ("nll", "nll_bits_per_dim"):
        assert f"{UNRELIABLE_MARK}  not a valid estimate: 69% of the items have a PSIS k-hat" in bad[key]
        assert "only an upper bound on average" in bad[key]
    assert "below 0 only by estimator noise around 0 (standard error 0.03)" in bad["mi_aggregate"]
    assert "below 0 by estimator noise (standard error 0.02)" in bad["consistency"]
    beyond = rows(metrics_table(metrics(consistency=-0.31, consistency_se=0.1)))
    assert "below 0 beyond its noise (standard error 0.1): the encoder's means are worse" in beyond["consistency"]


def test_the_comparison_table_marks_each_objectives_unreliable_nll():
    def summary(values):
        return {k: {"mean": v, "std": 0.1, "n": 3} for k, v in values.items()}

    table = rows(
        comparison_table({"elbo": summary(metrics(0.04)), "amim": summary(metrics(0.69))}, ["nll", "mi_aggregate"])
    )
    assert table["nll"].endswith(f"3.6000 ± 0.1000 {UNRELIABLE_MARK}") and table["nll"].count(UNRELIABLE_MARK) == 1
    assert UNRELIABLE_MARK not in table["mi_aggregate"]


def test_the_comparison_figure_hatches_and_labels_an_unreliable_nll(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import pyromim.plots.comparison as figure

    figures = []
    monkeypatch.setattr(figure, "save", lambda fig, path: figures.append(fig) or path)

    def summary(values):
        return {k: {"mean": v, "std": 0.1, "n": 3} for k, v in values.items()}

    figure.plot_comparison(
        {"elbo": summary(metrics(0.04)), "amim": summary(metrics(0.69))},
        tmp_path / "compare.png",
        metrics=["nll", "mi_aggregate"],
    )
    (fig,) = figures
    nll_axis, mi_axis = fig.axes[:2]
    assert [bool(bar.get_hatch()) for bar in nll_axis.patches] == [False, True]
    assert [text.get_text() for text in nll_axis.texts] == ["unreliable"]
    assert not any(bar.get_hatch() for bar in mi_axis.patches) and not mi_axis.texts
    assert any("psis_khat_bad_fraction > 0.3" in text.get_text() for text in fig.texts)


def test_every_metric_evaluate_reports_has_a_note_in_the_run_table():
    from pyromim.experiments.report import METRIC_NOTES
    from pyromim.metrics import EVALUATE_KEYS
    from pyromim.metrics.evaluate import SEQUENCE_KEYS

    assert set(EVALUATE_KEYS) | set(SEQUENCE_KEYS) <= set(METRIC_NOTES)
