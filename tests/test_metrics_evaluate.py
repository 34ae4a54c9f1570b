import logging
import math

import pytest
import torch

from pyromim.metrics import (
    EVALUATE_KEYS,
    active_units,
    evaluate,
    knn_accuracy,
    reconstruction_error,
)

from metrics_models import autoencoder  # noqa: F401 (pytest fixtures)


def test_keys_and_deterministic_entries(autoencoder, caplog):
    x = torch.randn(150, 2)
    with caplog.at_level(logging.INFO, logger="pyromim.metrics.evaluate"):
        result = evaluate(autoencoder.model, autoencoder.guide, x, num_samples=50)
    assert list(result) == list(EVALUATE_KEYS)
    assert set(result) == {
        "nll",
        "nll_bits_per_dim",
        "psis_khat_bad_fraction",
        "mi_ksg",
        "mi_aggregate",
        "active_units",
        "knn5_accuracy",
        "recon_error",
    }
    assert math.isnan(result["knn5_accuracy"])
    assert "knn5_accuracy is NaN: no labels" in caplog.text
    assert result["active_units"] == active_units(autoencoder.guide, x).num_active == 2
    recon = reconstruction_error(autoencoder.model, autoencoder.guide, x).error
    assert result["recon_error"] == pytest.approx(recon, abs=1e-12)
    assert math.isclose(result["nll_bits_per_dim"], result["nll"] / (2 * math.log(2)))
    assert 0.0 <= result["psis_khat_bad_fraction"] <= 1.0
    # z = [x/2 + noise, noise]: informative, so both MI estimates are clearly positive,
    # and the aggregate estimate respects its log N ceiling
    assert result["mi_ksg"] > 0.5
    assert 0.5 < result["mi_aggregate"] <= math.log(150)


def test_knn_uses_the_training_set_when_given(autoencoder):
    x_train, x_test = torch.randn(200, 2), torch.randn(100, 2)
    y_train, y_test = (x_train[:, 0] > 0).long(), (x_test[:, 0] > 0).long()
    result = evaluate(
        autoencoder.model,
        autoencoder.guide,
        x_test,
        y_test,
        x_train,
        y_train,
        num_samples=10,
    )
    # posterior means are [x / 2, 0]: the classifier sees the same geometry as x
    assert result["knn5_accuracy"] == pytest.approx(
        knn_accuracy(x_train / 2, y_train, x_test / 2, y_test), abs=1e-12
    )
    assert result["knn5_accuracy"] > 0.9


def test_training_data_without_labels_is_an_error(autoencoder):
    x = torch.randn(20, 2)
    with pytest.raises(ValueError, match="both train_data and train_labels"):
        evaluate(autoencoder.model, autoencoder.guide, x, x[:, 0] > 0, train_data=x)
