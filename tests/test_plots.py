"""pyromim.plots: every plot is written, readable and shows what it claims (checked on the figure)."""

import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

from pyromim import build_model  # noqa: E402
from pyromim.data import ArrayDataset, digits, toy4  # noqa: E402
from pyromim.plots import (  # noqa: E402
    image_shape,
    make_run_plots,
    plot_comparison,
    plot_latent_space,
    read_metrics_csv,
)
from pyromim.specs import resolve_spec  # noqa: E402


def assert_png(path, min_width=300):
    image = mpimg.imread(path)
    assert image.shape[1] >= min_width and image.shape[0] >= 150
    assert image[..., :3].std() > 0.05  # not a blank canvas


@pytest.fixture
def captured(monkeypatch):
    """The figures the plot functions save (to inspect their artists)."""
    figures = []
    import pyromim.plots.figures as figures_module

    original = figures_module.save

    def keep(fig, path):
        figures.append(fig)
        return original(fig, path)

    for module in ("latents", "comparison"):
        monkeypatch.setattr(f"pyromim.plots.{module}.save", keep)
    return figures


def test_read_metrics_csv_merges_lightning_rows(tmp_path):
    # Lightning's CSV: lr logged at epoch start (no epoch), then val and train rows per epoch
    path = tmp_path / "metrics.csv"
    path.write_text(
        "beta,epoch,lr-Adam,step,train_loss,val_loss\n"
        ",,0.1,0,,\n,0,,3,,5.0\n0.5,0,,3,4.0,\n"
        ",,0.2,4,,\n,1,,7,,3.0\n1.0,1,,7,2.5,\n"
    )
    assert read_metrics_csv(path) == [
        {"epoch": 1.0, "lr-Adam": 0.1, "val_loss": 5.0, "beta": 0.5, "train_loss": 4.0},
        {"epoch": 2.0, "lr-Adam": 0.2, "val_loss": 3.0, "beta": 1.0, "train_loss": 2.5},
    ]


def test_image_shapes_of_the_catalogue():
    assert image_shape(resolve_spec("digits_normal")) == (8, 8)
    assert image_shape(resolve_spec("mnist_hvae_vampprior")) == (28, 28)
    assert image_shape(resolve_spec("toy4")) is None
    assert image_shape(resolve_spec("toy4_20")) is None
    assert image_shape(resolve_spec("counts_negbin")) is None


def test_latent_space_draws_one_posterior_ellipse_per_point(tmp_path, captured):
    model = build_model("toy4")
    data = toy4(n_train=30, n_val=0, n_test=0, seed=0).train
    path = plot_latent_space(model, data, tmp_path / "latent.png", max_ellipses=20)
    assert_png(path)
    ax = captured[0].axes[0]
    ellipses = [p for p in ax.patches if type(p) is Ellipse]  # Circle (prior rings) subclasses Ellipse
    assert len(ellipses) == 20
    with torch.no_grad():
        loc, scale = model.posterior(data.x[:1])
    # the 1-sigma ellipse of q(z|x): centre mu, full axes 2 sigma
    assert ellipses[0].center == pytest.approx(tuple(loc[0].tolist()), rel=1e-5)
    assert (ellipses[0].width, ellipses[0].height) == pytest.approx(tuple((2 * scale[0]).tolist()), rel=1e-5)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [f"label {k}" for k in range(5)] == legend[:5]
    assert ax.get_xlabel() and ax.get_ylabel()


def test_latent_space_projects_higher_dimensions(tmp_path, captured):
    model = build_model("digits_normal")
    data = digits(seed=0).test
    plot_latent_space(model, data, tmp_path / "latent.png")
    ax = captured[0].axes[0]
    assert "PC 1" in ax.get_xlabel()
    assert not [p for p in ax.patches if type(p) is Ellipse]
    assert len(ax.get_legend().get_texts()) == 10


def test_comparison_bars_are_the_means(tmp_path, captured):
    summary = {
        "elbo": {"nll": {"mean": 2.0, "std": 0.1, "n": 2}, "mi_ksg": {"mean": 1.0, "std": 0.2, "n": 2}},
        "mim": {"nll": {"mean": 2.5, "std": 0.3, "n": 2}, "mi_ksg": {"mean": math.nan, "std": math.nan, "n": 0}},
    }
    path = plot_comparison(summary, tmp_path / "c.png", metrics=["nll", "mi_ksg"], labels={"elbo": "VAE"})
    assert_png(path)
    nll_ax, mi_ax = captured[0].axes[:2]
    assert [b.get_height() for b in nll_ax.patches] == [2.0, 2.5]
    assert [b.get_height() for b in mi_ax.patches] == [1.0]  # a NaN mean draws no bar
    assert [t.get_text() for t in nll_ax.get_xticklabels()] == ["VAE", "mim"]


@pytest.mark.parametrize(
    "spec, data, expected",
    [
        (
            "toy4",
            lambda: toy4(n_train=64, n_val=32, n_test=64, seed=0),
            ["training_curves.png", "latent_space.png", "data_reconstructions.png"],
        ),
        (
            "digits_normal",
            lambda: digits(seed=0),
            ["training_curves.png", "latent_space.png", "reconstructions.png", "samples.png"],
        ),
    ],
)
def test_run_plots_chosen_by_data(tmp_path, spec, data, expected):
    history = [
        {"epoch": 1.0, "train_loss": 3.0, "val_loss": 3.5, "beta": 0.5, "lr-Adam": 1e-4},
        {"epoch": 2.0, "train_loss": 2.0, "val_loss": 2.2, "beta": 1.0, "lr-Adam": 1e-3},
    ]
    paths = make_run_plots(build_model(spec), resolve_spec(spec), data(), tmp_path, history=history, warmup_epochs=2)
    assert [p.name for p in paths] == expected
    for p in paths:
        assert_png(p)


def test_images_keep_their_layout(tmp_path):
    from pyromim.plots.images import _as_images

    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5) / 120
    rgb = _as_images(x.reshape(2, -1), (4, 5, 3))
    assert rgb.shape == (2, 4, 5, 3)
    assert np.allclose(rgb[1, 2, 3], x[1, :, 2, 3].numpy())  # channel-first storage to HWC
    grey = ArrayDataset(torch.rand(3, 64), "grey")
    assert _as_images(grey.x, (8, 8)).shape == (3, 8, 8)


@pytest.mark.parametrize("name", ["digits_made", "digits_pixelcnn"])
def test_an_autoregressive_image_models_run_plots_show_greedy_decodes(tmp_path, name):
    """Such a decoder has no mean in closed form: its samples and reconstructions are greedy decodes."""
    from pyromim import build_model
    from pyromim.data import load_data
    from pyromim.plots import make_run_plots

    model = build_model(name)
    data = load_data("digits", seed=0)
    test = data.test.subset(torch.arange(12))
    test = ArrayDataset(test.x.reshape((12, *model.spec.data.shape)), test.kind, test.labels, name=test.name)
    splits = type(data)(train=test, val=None, test=test)
    names = {p.name for p in make_run_plots(model, model.spec, splits, tmp_path)}
    assert {"samples.png", "reconstructions.png"} <= names
