"""Spec validation: each kind of mistake gives its promised message; swapping a prior is one line."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import pyromim
from pyromim.blocks.priors import StandardNormalPrior, VampPrior
from pyromim.specs import ModelSpec, SpecError, resolve_spec


def _toml(**edits: str) -> str:
    text = resolve_spec("digits_vampprior").to_toml()
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_typo_key_suggests_the_nearest_key():
    with pytest.raises(SpecError, match=r"unknown key 'model.latnet_dim'; did you mean 'latent_dim'\?"):
        ModelSpec.from_toml(_toml(**{"latent_dim = 8": "latnet_dim = 8"}))


def test_typo_table_suggests_the_nearest_table():
    with pytest.raises(SpecError, match=r"unknown key 'trainign'; did you mean 'training'\?"):
        ModelSpec.from_toml(_toml(**{"[training]": "[trainign]"}))


def test_wrong_type_names_the_key_and_the_type():
    with pytest.raises(SpecError, match=r"'model.latent_dim' must be int, got str '8'"):
        ModelSpec.from_toml(_toml(**{"latent_dim = 8": 'latent_dim = "8"'}))
    with pytest.raises(SpecError, match=r"'encoder.hidden\[0\]' must be int"):
        ModelSpec.from_toml(_toml(**{"hidden = [128]": "hidden = [12.5]"}))


def test_unknown_prior_lists_the_allowed_priors():
    with pytest.raises(
        SpecError,
        match=r"'model.prior' = 'vamp' is not one of: normal, learned_normal, mixture, vampprior; did you mean 'vampprior'\?",
    ):
        ModelSpec.from_toml(_toml(**{'prior = "vampprior"': 'prior = "vamp"'}))


def test_likelihood_that_does_not_fit_the_data_kind():
    with pytest.raises(
        SpecError,
        match=r"'model.likelihood' = 'poisson' does not fit 'data.kind' = 'binary'; for binary data use one of: bernoulli, made, pixelcnn, gaussian",
    ):
        ModelSpec.from_toml(_toml(**{'likelihood = "bernoulli"': 'likelihood = "poisson"'}))


@pytest.mark.parametrize(
    "edits, message",
    [
        ({'network = "mlp"': 'network = "conv"'}, r"'encoder.network' = 'conv' needs 'data.shape' = \[C, H, W\]"),
        ({"levels = 1": "levels = 2"}, r"'model.top_latent_dim' .* is required"),
        (
            {'kind = "binary"': 'kind = "tokens"', 'likelihood = "bernoulli"': 'likelihood = "categorical"'},
            r"'data.vocab_size'",
        ),
        ({'q_x = "marginal"': 'q_x = "data"'}, r"'training.q_x' = 'data' only works with"),
        ({"lr = 0.001": "lr = -1.0"}, r"'training.lr' must be a finite number >= 0, got -1.0"),
        ({"name = ": "nmae = "}, r"unknown key 'nmae'; did you mean 'name'\?"),
        ({"[data]\n": "[data]\nshape = [0]\n", "shape = [64]\n": ""}, r"'data.shape' must be a non-empty list"),
    ],
)
def test_impossible_combinations_name_the_key(edits, message):
    with pytest.raises(SpecError, match=message):
        ModelSpec.from_toml(_toml(**edits))


def test_invalid_toml_names_the_source(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(SpecError, match="broken.toml: not valid TOML"):
        pyromim.build_model(path)


def test_unknown_catalogue_name_suggests_a_spec():
    with pytest.raises(SpecError, match=r"no spec named 'toy5'.*did you mean 'toy4'\?"):
        pyromim.build_model("toy5")


def test_swapping_the_prior_is_one_line(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(_toml(**{'prior = "vampprior"': 'prior = "normal"'}))
    model = pyromim.build_model(path)
    assert isinstance(model.prior, StandardNormalPrior)
    assert isinstance(pyromim.build_model("digits_vampprior").prior, VampPrior)


def test_build_model_accepts_name_path_and_object(tmp_path):
    spec = resolve_spec("toy4")
    path = tmp_path / "toy.toml"
    spec.save(path)
    for source in ("toy4", path, str(path), spec):
        assert pyromim.build_model(source).spec == spec


def test_toy_spec_carries_the_reference_training_settings():
    spec = resolve_spec("toy4")
    t = spec.training
    assert (t.objective, t.epochs, t.batch_size, t.lr, t.warmup_epochs, t.patience) == ("mim", 200, 128, 1e-3, 3, 3)
    assert spec.data.dataset == "toy4" and spec.data.shape == [2]
    # the reference's --min-logvar 6 is sigma = exp(.) + 1e-6: a floor of 1e-6 on the standard deviation
    assert (spec.encoder.hidden, spec.encoder.activation) == ([50], "tanh")
    assert spec.model.min_scale == 1e-6
    assert resolve_spec("toy4_20").data.dataset == "toy4_20"


def test_toy_network_is_the_reference_mlp():
    model = pyromim.build_model("toy4")
    linears = [m for m in model.modules() if type(m).__name__.endswith("Linear")]
    shapes = sorted(tuple(m.weight.shape) for m in linears)
    # encoder: 2 -> 50 -> (2 means + 2 log-variances); decoder: 2 -> 50 -> (2 + 2)
    assert shapes == sorted([(50, 2), (4, 50), (50, 2), (4, 50)])


def _edited(**tables: dict) -> dict:
    """The toy4 spec as a dict with some keys of some tables replaced."""
    data = resolve_spec("toy4").to_dict()
    for table, changes in tables.items():
        data[table] = {**data[table], **changes}
    return data


@pytest.mark.parametrize(
    "tables, message",
    [
        (
            {"data": {"dataset": "toy5"}},
            r"'data.dataset' = 'toy5' is not a built-in data set .*or leave the key out.*; did you mean 'toy4'\?",
        ),
        ({"encoder": {"hidden": [50, 0]}}, r"'encoder.hidden' must hold sizes >= 1, got \[50, 0\]"),
        ({"decoder": {"hidden": [-5]}}, r"'decoder.hidden' must hold sizes >= 1, got \[-5\]"),
        (
            {"model": {"levels": 2, "top_latent_dim": 2, "conditional_hidden": [0]}},
            r"'model.conditional_hidden' must hold sizes >= 1",
        ),
        ({"model": {"marginal_components": -3}}, r"'model.marginal_components' must be >= 0, got -3"),
        (
            {"model": {"likelihood_scale": "fixed", "likelihood_fixed_scale": -1.0}},
            r"'model.likelihood_fixed_scale' must be > 0, got -1.0",
        ),
        ({"model": {"min_scale": float("nan")}}, r"'model.min_scale' must be a finite number > 0, got nan"),
        ({"model": {"min_scale": 0.0}}, r"'model.min_scale' must be a finite number > 0, got 0.0"),
        ({"training": {"lr": float("nan")}}, r"'training.lr' must be a finite number >= 0"),
        ({"training": {"warmup_epochs": -1}}, r"'training.warmup_epochs' must be an int in \[0, 2\*\*63 - 1\], got -1"),
        ({"training": {"patience": -2}}, r"'training.patience' must be an int in \[0, 2\*\*63 - 1\], got -2"),
        (
            {
                "data": {"kind": "tokens", "shape": [1, 4, 4], "vocab_size": 5},
                "model": {"likelihood": "categorical"},
                "encoder": {"network": "conv"},
            },
            r"'encoder.network' = 'conv' does not take 'data.kind' = 'tokens'",
        ),
    ],
)
def test_impossible_values_name_the_key(tables, message):
    with pytest.raises(SpecError, match=message):
        ModelSpec.from_dict(_edited(**tables))


def test_every_built_in_dataset_name_is_accepted():
    from pyromim.data import BUILTIN_DATASETS

    for name in BUILTIN_DATASETS:
        assert ModelSpec.from_dict(_edited(data={"dataset": name})).data.dataset == name


def test_conv_decoder_takes_token_images():
    spec = ModelSpec.from_dict(
        _edited(
            data={"kind": "tokens", "shape": [1, 4, 4], "vocab_size": 5},
            model={"likelihood": "categorical"},
            decoder={"network": "conv", "channels": [8]},
        )
    )
    model = pyromim.build_model(spec)
    x = torch.randint(0, 5, (3, 1, 4, 4))
    assert model.decode(model.encode(x)).log_prob(x).shape == (3,)


@pytest.mark.parametrize(
    "text", ['a "quoted" \\ backslash', "two\nlines\tand a tab", "ünïcødé ✓", "\x7f\x01 control", "'single'"]
)
def test_any_description_round_trips_through_toml(text):
    import dataclasses

    spec = dataclasses.replace(resolve_spec("toy4"), description=text)
    assert ModelSpec.from_toml(spec.to_toml()) == spec


def test_a_directory_named_like_a_spec_does_not_hide_the_catalogue(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "toy4").mkdir()  # e.g. the output directory of an earlier run
    assert pyromim.build_model("toy4").spec.name == "toy4"


def test_adding_a_prior_is_one_registry_entry_plus_its_class(monkeypatch):
    import pyro.distributions as dist

    from pyromim.blocks.priors import PRIORS, Prior

    class LaplacePrior(Prior):
        name = "laplace"

        def __init__(self, latent_dim: int) -> None:
            super().__init__(latent_dim)
            self.register_buffer("loc", torch.zeros(self.latent_dim))

        def forward(self):
            return dist.Laplace(self.loc, torch.ones_like(self.loc)).to_event(1)

    with pytest.raises(SpecError, match="'model.prior' = 'laplace' is not one of"):
        ModelSpec.from_toml(_toml(**{'prior = "vampprior"': 'prior = "laplace"'}))
    monkeypatch.setitem(PRIORS, LaplacePrior.name, LaplacePrior)  # the one entry
    spec = ModelSpec.from_toml(_toml(**{'prior = "vampprior"': 'prior = "laplace"'}))
    model = pyromim.build_model(spec)
    assert isinstance(model.prior, LaplacePrior)
    assert model.prior().event_shape == (spec.model.latent_dim,)


def test_every_vocabulary_is_read_from_its_registry():
    from pyromim.blocks.likelihoods import LIKELIHOODS
    from pyromim.blocks.priors import PRIORS
    from pyromim.data import DATA_KINDS
    from pyromim.infer.objectives import OBJECTIVES
    from pyromim.nn import ACTIVATIONS, NETWORKS, NORMS
    from pyromim.specs.schema import ArchitectureSpec, DataSpec, NetworkSpec, TrainingSpec

    def choices(cls, name):
        return next(f for f in dataclasses.fields(cls) if f.name == name).metadata["choices"]

    assert choices(DataSpec, "kind") is DATA_KINDS
    assert choices(ArchitectureSpec, "prior") is PRIORS
    assert choices(ArchitectureSpec, "likelihood") is LIKELIHOODS
    assert choices(NetworkSpec, "network") is NETWORKS
    assert choices(NetworkSpec, "activation") is ACTIVATIONS
    assert choices(NetworkSpec, "norm") is NORMS
    assert choices(TrainingSpec, "objective") is OBJECTIVES
    assert all(kind in DATA_KINDS for cls in LIKELIHOODS.values() for kind in cls.spec_kinds)


def test_old_objective_word_vae_reads_as_elbo_with_a_deprecation_warning():
    text = _toml(**{'objective = "mim"': 'objective = "vae"'})
    with pytest.warns(DeprecationWarning, match="'training.objective' = 'vae' is deprecated; write 'elbo'"):
        spec = ModelSpec.from_toml(text)
    assert spec.training.objective == "elbo"
    assert 'objective = "elbo"' in spec.to_toml()


def test_old_key_min_logvar_reads_as_the_scale_floor_with_a_deprecation_warning():
    text = _toml(**{"min_scale = 0.049787068367863944": "min_logvar = -6.0"})
    with pytest.warns(DeprecationWarning, match="'model.min_logvar' = -6.0 is deprecated.*'min_scale' = 0.0497871"):
        spec = ModelSpec.from_toml(text)
    assert spec.model.min_scale == math.exp(-3.0) == resolve_spec("digits_vampprior").model.min_scale
    with pytest.raises(SpecError, match="give 'model.min_scale' only"):
        ModelSpec.from_toml(_toml(**{"min_scale = 0.049787068367863944": "min_scale = 0.1\nmin_logvar = -6.0"}))


def test_gaussian_head_and_likelihood_still_take_min_logvar_with_a_warning():
    from pyromim.blocks.likelihoods import GaussianLikelihood
    from pyromim.nn import GaussianHead

    with pytest.warns(DeprecationWarning, match="min_logvar is deprecated"):
        assert GaussianHead(3, 2, min_logvar=-6.0).min_scale == math.exp(-3.0)
    with pytest.warns(DeprecationWarning, match="min_logvar is deprecated"):
        assert GaussianLikelihood((2,), min_logvar=2 * math.log(1e-3)).min_scale == pytest.approx(1e-3)


@pytest.mark.parametrize(
    "name, problem",
    [
        ("../../x", "holds a path separator"),
        ("/etc/x", "holds a path separator"),
        ("a\\b", "holds a path separator"),
        ("..", "is a relative path"),
        ("", "is empty"),
        ("C:x", "drive"),
        ("tab\there", "control character"),
        ("~root", "starts with '~'"),
    ],
)
def test_a_spec_name_cannot_choose_a_path(name, problem):
    with pytest.raises(SpecError, match=rf"evil.toml: 'name' = .* {problem}"):
        ModelSpec.from_dict({**_edited(), "name": name}, where="evil.toml")


def test_plain_names_are_accepted():
    for name in ("toy4", "my model", "v1.2-final_b"):
        assert ModelSpec.from_dict({**_edited(), "name": name}).name == name


def test_empty_hidden_layers_are_refused_with_the_key():
    with pytest.raises(SpecError, match=r"'decoder.hidden' = \[\] is not supported"):
        ModelSpec.from_dict(_edited(decoder={"hidden": []}))
    with pytest.raises(SpecError, match=r"'model.conditional_hidden' = \[\] is not supported"):
        ModelSpec.from_dict(_edited(model={"levels": 2, "top_latent_dim": 2, "conditional_hidden": []}))


def test_integers_beyond_toml_range_are_refused():
    with pytest.raises(SpecError, match=r"'training.batch_size' = 100000000000000000000 is too large"):
        ModelSpec.from_dict(_edited(training={"batch_size": 10**20}))


@pytest.mark.parametrize(
    "name", ["toy4", "digits_vampprior", "digits_mixture", "counts_negbin", "mnist_hvae_vampprior"]
)
def test_memory_estimate_is_a_lower_bound_close_to_the_built_model(name):
    from pyromim.models.memory import estimate_memory

    spec = resolve_spec(name)
    built = sum(p.numel() for p in pyromim.build_model(spec).parameters())
    estimated = estimate_memory(spec).n_weights
    assert estimated <= built
    # dense layers are counted exactly; the conv net's strided feature maps are left out
    assert estimated >= (0.6 if name == "mnist_hvae_vampprior" else 0.95) * built


@pytest.mark.parametrize(
    "tables, key",
    [
        ({"model": {"latent_dim": 10**9}}, "model.latent_dim"),
        ({"encoder": {"hidden": [10**6, 10**6]}}, "encoder.hidden"),
        ({"model": {"prior": "vampprior", "prior_components": 10**10}}, "model.prior_components"),
    ],
)
def test_a_model_larger_than_the_memory_is_refused_naming_the_key(tables, key):
    spec = ModelSpec.from_dict(_edited(**tables))
    with pytest.raises(SpecError, match=rf"'{key}' = .* needs at least .* GB .* but this machine has"):
        pyromim.build_model(spec)


def test_a_batch_larger_than_the_memory_is_refused():
    from pyromim.models.memory import check_memory

    spec = resolve_spec("toy4")
    check_memory(spec, batch_size=128, training=True, available=10**6)
    with pytest.raises(SpecError, match=r"'training.batch_size' = 10000 needs at least"):
        check_memory(spec, batch_size=10_000, training=True, available=10**6)
