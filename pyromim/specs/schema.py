"""The model specification: what a TOML file in ``models/`` may say.

A spec has a ``name``, a ``description`` and five tables::

    [data]      kind and shape of the data, the built-in data set it was made for
    [model]     latent sizes, levels, prior, likelihood and their options
    [encoder]   network for q(z | x)
    [decoder]   network for p(x | z)
    [training]  objective and the settings the spec is meant to run with

Changing ``prior = "vampprior"`` to ``prior = "normal"`` (or any other
choice) is all it takes to swap a component: every option has a default.

The names a key may take come from one registry per vocabulary, which the
builders read too: data kinds (:data:`pyromim.data.DATA_KINDS`), priors
(:data:`pyromim.blocks.priors.PRIORS`), likelihoods (:data:`pyromim.blocks.likelihoods.LIKELIHOODS`),
networks (:data:`pyromim.nn.NETWORKS`), activations and norms
(:data:`pyromim.nn.ACTIVATIONS`, :data:`pyromim.nn.NORMS`) and objectives
(:data:`pyromim.infer.objectives.OBJECTIVES`). Old spellings still read, with a
:class:`DeprecationWarning`: ``objective = "vae"`` (now ``"elbo"``) and
``[model] min_logvar`` (a log-variance; now ``min_scale = exp(min_logvar / 2)``,
the standard-deviation floor itself).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyromim.blocks.likelihoods import LIKELIHOODS
from pyromim.blocks.priors import PRIORS
from pyromim.data.dataset import DATA_KINDS
from pyromim.infer.objectives import DEPRECATED_OBJECTIVES, OBJECTIVES, Q_X_CHOICES
from pyromim.nn.gaussian import DEFAULT_MIN_SCALE
from pyromim.nn.mlp import ACTIVATIONS, NORMS
from pyromim.nn.networks import NETWORKS
from pyromim.settings import LR_SCHEDULES, SPEC_SETTINGS, check_setting
from pyromim.specs import toml_io
from pyromim.specs.validation import SpecError, from_dict, nearest, to_dict


def likelihoods_for_kind(kind: str) -> list[str]:
    """The likelihoods a spec may pair with ``[data] kind`` = ``kind`` (from :data:`~pyromim.blocks.likelihoods.LIKELIHOODS`)."""
    fitting = [name for name, cls in LIKELIHOODS.items() if kind in cls.spec_kinds]
    return sorted(fitting, key=lambda name: LIKELIHOODS[name].support_kind != kind)  # the exact fit first


def _choices(registry: Collection[Any], default: Any) -> Any:
    """A field whose value must be a key of ``registry`` (read at validation time, so new entries count)."""
    return field(default=default, metadata={"choices": registry})


@dataclass
class DataSpec:
    """``[data]``: the data a spec takes."""

    kind: str = field(metadata={"choices": DATA_KINDS})  # what the values are (pyromim.data.DATA_KINDS)
    shape: list[int]  # shape of one item, e.g. [2] or [1, 8, 8] (channels, height, width)
    dataset: str | None = None  # built-in data set the spec was made for (toy4, toy4_20, digits)
    vocab_size: int | None = None  # tokens only: number of distinct tokens
    standardize: bool = False  # gaussian only: networks see data scaled by the training mean and std
    val_fraction: float | None = None  # data files: share of items kept for validation (default 0.1)
    test_fraction: float | None = None  # data files: share of items kept for testing (default 0.1)


@dataclass
class ArchitectureSpec:
    """``[model]``: latents, prior and likelihood."""

    latent_dim: int  # size of the latent z
    likelihood: str = field(metadata={"choices": LIKELIHOODS})  # p(x|z); must fit data.kind
    levels: int = _choices((1, 2), default=1)  # 2: a hierarchy z2 -> z -> x
    top_latent_dim: int | None = None  # size of z2 when levels = 2
    prior: str = _choices(PRIORS, default="normal")  # p(z) (of z2 when levels = 2)
    prior_components: int = 10  # mixture components or VampPrior pseudo-inputs
    likelihood_scale: str = _choices(("fixed", "learned", "per_datum"), default="per_datum")  # gaussian only
    likelihood_fixed_scale: float = 1.0  # gaussian with likelihood_scale = "fixed"
    min_scale: float = DEFAULT_MIN_SCALE  # floor on encoder (and gaussian decoder) standard deviations
    conditional_hidden: list[int] = field(default_factory=lambda: [256])  # levels = 2: p(z|z2), q(z|x,z2)
    marginal_components: int = 0  # > 0: learned q(x), a mixture of decoders at pseudo-latents


@dataclass
class NetworkSpec:
    """``[encoder]`` / ``[decoder]``: an MLP, a small conv net or a GRU over tokens (encoder).

    With an autoregressive likelihood (``made``, ``pixelcnn``, ``gru``) the
    ``[decoder]`` table sizes that likelihood's network (``hidden``,
    ``channels``, ``embedding_dim``) and ``network`` is not used."""

    network: str = _choices(NETWORKS, default="mlp")  # conv needs data.shape = [C, H, W]
    hidden: list[int] = field(default_factory=lambda: [50])  # MLP hidden widths; conv: feature width
    activation: str = _choices(ACTIVATIONS, default="tanh")  # between hidden layers
    norm: str = _choices(NORMS, default="none")  # normalisation between hidden layers
    channels: list[int] = field(default_factory=lambda: [32, 64])  # conv; pixelcnn decoder: one width per layer
    embedding_dim: int = 64  # gru encoder and gru decoder: token embedding width


@dataclass
class TrainingSpec:
    """``[training]``: the settings a spec is meant to be trained with.

    Besides ``objective`` and ``q_x`` its keys are the :class:`~pyromim.training.TrainConfig`
    fields that say what is trained (:data:`pyromim.settings.SPEC_SETTINGS`), checked by
    the same rules; only the defaults are the spec's own."""

    objective: str = _choices(OBJECTIVES, default="mim")  # the loss (pyromim.experiments.OBJECTIVES)
    epochs: int = 200  # at most this many epochs
    batch_size: int = 128  # items per optimisation step
    lr: float = 1e-3  # Adam's peak learning rate
    warmup_epochs: int = 3  # beta and the Noam learning rate rise over these epochs; decoder-side MIM starts after
    patience: int = 3  # early stopping: epochs without a better validation loss (0: off)
    q_x: str = _choices(Q_X_CHOICES, default="marginal")  # estimate of log q(x) in MIM's loss
    lr_schedule: str = _choices(LR_SCHEDULES, default="noam")  # "noam" (warm-up, then 1/sqrt decay) or "constant"
    lr_warmup_epochs: int | None = None  # the Noam warm-up's length (default: warmup_epochs)
    restore_best: bool = True  # evaluate the best validation epoch's parameters (false: the last epoch's)
    val_batch_size: int | None = None  # items per validation batch (default: batch_size)


@dataclass
class ModelSpec:
    """A complete, validated model specification."""

    name: str  # the spec's name
    data: DataSpec
    model: ArchitectureSpec
    description: str = ""  # one line for humans
    encoder: NetworkSpec = field(default_factory=NetworkSpec)
    decoder: NetworkSpec = field(default_factory=NetworkSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)

    # ----------------------------------------------------------- validation
    def validate(self, where: str = "spec") -> ModelSpec:
        """Check combinations the per-key checks cannot see; return ``self``."""
        problem = unsafe_name_problem(self.name)
        if problem is not None:
            raise SpecError(
                f"{where}: 'name' = {self.name!r} {problem}; the name becomes a folder of the run directory, "
                "so write a plain name such as 'my_model' (letters, digits, '_', '-', '.')"
            )
        self._check_data(where)
        self._check_model(where)
        self._check_networks(where)
        self._check_training(where)
        return self

    def _check_data(self, where: str) -> None:
        """``[data]``, and which likelihoods and options fit its kind."""
        d, m = self.data, self.model
        if not d.shape or any(s < 1 for s in d.shape):
            raise SpecError(f"{where}: 'data.shape' must be a non-empty list of positive sizes, got {d.shape}")
        allowed = likelihoods_for_kind(d.kind)
        if m.likelihood not in allowed:
            raise SpecError(
                f"{where}: 'model.likelihood' = '{m.likelihood}' does not fit 'data.kind' = '{d.kind}'; "
                f"for {d.kind} data use one of: {', '.join(allowed)}"
            )
        if m.likelihood == "pixelcnn" and len(d.shape) != 2:
            raise SpecError(
                f"{where}: 'model.likelihood' = 'pixelcnn' needs 'data.shape' = [H, W] (images of one channel, no "
                f"channel axis), got {d.shape}; for other items use one of: "
                f"{', '.join(name for name in allowed if name != 'pixelcnn')}"
            )
        if d.dataset is not None:
            from pyromim.data.registry import BUILTIN_DATASETS

            if d.dataset not in BUILTIN_DATASETS:
                raise SpecError(
                    f"{where}: 'data.dataset' = {d.dataset!r} is not a built-in data set (choose one of: "
                    f"{', '.join(BUILTIN_DATASETS)}, or leave the key out for data you bring as files)"
                    f"{nearest(d.dataset, BUILTIN_DATASETS)}"
                )
        if d.standardize and m.likelihood != "gaussian":
            raise SpecError(
                f"{where}: 'data.standardize' = true needs 'model.likelihood' = 'gaussian' (got "
                f"'{m.likelihood}'); other likelihoods see the data as they are, so remove the key"
            )
        for key in ("val_fraction", "test_fraction"):
            value = getattr(d, key)
            if value is not None and not 0 <= value < 1:
                raise SpecError(f"{where}: 'data.{key}' must lie in [0, 1) (a share of the items), got {value}")
        if (d.val_fraction or 0) + (d.test_fraction or 0) >= 1:
            raise SpecError(
                f"{where}: 'data.val_fraction' + 'data.test_fraction' must be below 1 so that training items "
                f"remain, got {d.val_fraction} + {d.test_fraction}"
            )
        if d.kind == "tokens" and (d.vocab_size is None or d.vocab_size < 2):
            raise SpecError(f"{where}: 'data.vocab_size' (an int >= 2) is required when 'data.kind' = 'tokens'")

    def _check_model(self, where: str) -> None:
        """``[model]``: sizes, levels, scales."""
        m = self.model
        for key, value in (("model.latent_dim", m.latent_dim), ("model.prior_components", m.prior_components)):
            if value < 1:
                raise SpecError(f"{where}: '{key}' must be >= 1, got {value}")
        if m.levels == 2 and (m.top_latent_dim is None or m.top_latent_dim < 1):
            raise SpecError(f"{where}: 'model.top_latent_dim' (an int >= 1) is required when 'model.levels' = 2")
        if m.levels == 2 and not m.conditional_hidden:
            raise SpecError(
                f"{where}: 'model.conditional_hidden' = [] is not supported: the conditional networks of a "
                f"two-level model need at least one hidden width (e.g. [256])"
            )
        if m.marginal_components < 0:
            raise SpecError(f"{where}: 'model.marginal_components' must be >= 0, got {m.marginal_components}")
        if m.likelihood_scale == "fixed" and not m.likelihood_fixed_scale > 0:
            raise SpecError(f"{where}: 'model.likelihood_fixed_scale' must be > 0, got {m.likelihood_fixed_scale}")
        if m.likelihood_scale == "fixed" and not math.isfinite(m.likelihood_fixed_scale):
            raise SpecError(
                f"{where}: 'model.likelihood_fixed_scale' must be finite (the Gaussian likelihood's standard "
                f"deviation), got {m.likelihood_fixed_scale}"
            )
        if not (m.min_scale > 0 and math.isfinite(m.min_scale)):
            raise SpecError(f"{where}: 'model.min_scale' must be a finite number > 0, got {m.min_scale}")

    def _check_networks(self, where: str) -> None:
        """``[encoder]`` and ``[decoder]``: sizes, and which networks take the data."""
        d, m = self.data, self.model
        sizes = [("model.conditional_hidden", m.conditional_hidden)] + [
            (f"{table}.{key}", getattr(net, key))
            for table, net in (("encoder", self.encoder), ("decoder", self.decoder))
            for key in ("hidden", "channels")
        ]
        sizes += [
            (f"{table}.embedding_dim", [net.embedding_dim])
            for table, net in (("encoder", self.encoder), ("decoder", self.decoder))
        ]
        for key, values in sizes:
            if any(v < 1 for v in values):
                raise SpecError(f"{where}: '{key}' must hold sizes >= 1, got {values}")
        autoregressive = bool(getattr(LIKELIHOODS[m.likelihood], "owns_decoder", False))
        for table, net in (("encoder", self.encoder), ("decoder", self.decoder)):
            if table == "decoder" and autoregressive:
                continue  # the likelihood's own network: [decoder] sizes it, its 'network' is not used
            if table == "encoder" and net.network == "gru" and d.kind != "tokens":
                raise SpecError(
                    f"{where}: 'encoder.network' = 'gru' reads token sequences and needs 'data.kind' = 'tokens', "
                    f"got '{d.kind}'; use network = 'mlp' or 'conv'"
                )
            if table == "decoder" and net.network == "gru":
                raise SpecError(
                    f"{where}: 'decoder.network' = 'gru' is not a decoder network; for a recurrent decoder set "
                    "'model.likelihood' = 'gru'"
                )
            if table == "encoder" and net.network == "conv" and d.kind == "tokens":
                raise SpecError(
                    f"{where}: 'encoder.network' = 'conv' does not take 'data.kind' = 'tokens' "
                    "(the encoder sees tokens one-hot, one more dimension than [C, H, W]); use network = 'mlp'"
                )
            # a pixelcnn likelihood hands [H, W] images to the encoder with a channel axis
            image_like = len(d.shape) == 3 or (len(d.shape) == 2 and m.likelihood == "pixelcnn")
            if net.network == "conv" and not image_like:
                raise SpecError(
                    f"{where}: '{table}.network' = 'conv' needs 'data.shape' = [C, H, W], got {d.shape}; "
                    "use network = 'mlp' for flat data"
                )
            if net.network == "mlp" and not net.hidden:
                raise SpecError(
                    f"{where}: '{table}.hidden' = [] is not supported: an MLP needs at least one hidden "
                    f"width (e.g. hidden = [50]); without one the network is a linear map, under which "
                    f"the per-datum scales collapse and the MIM loss becomes non-finite"
                )
            if net.network == "conv" and (not net.hidden or not net.channels):
                raise SpecError(f"{where}: '{table}.network' = 'conv' needs non-empty 'hidden' and 'channels'")

    def _check_training(self, where: str) -> None:
        """``[training]``: ranges, and ``q_x`` against the objective and the model."""
        m, t = self.model, self.training
        if t.q_x == "learned" and m.marginal_components < 1:
            raise SpecError(f"{where}: 'training.q_x' = 'learned' needs 'model.marginal_components' >= 1")
        if t.q_x == "data" and t.objective != "amim":
            raise SpecError(
                f"{where}: 'training.q_x' = 'data' only works with 'training.objective' = 'amim' "
                "(decoder-side samples need q(x) at generated x)"
            )
        for key in SPEC_SETTINGS:
            check_setting(key, getattr(t, key), where, key=f"training.{key}")

    # ------------------------------------------------------------ round trip
    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "spec") -> ModelSpec:
        """A validated spec from nested dictionaries; ``where`` names the source in errors."""
        return from_dict(cls, _upgrade(data, where), where).validate(where)

    def to_dict(self) -> dict[str, Any]:
        """The spec as nested dictionaries, every default filled in."""
        return to_dict(self)

    @classmethod
    def from_toml(cls, text: str, where: str = "spec") -> ModelSpec:
        """A validated spec from TOML text; :class:`SpecError` names ``where``, the key and the fix."""
        try:
            data = toml_io.loads(text)
        except toml_io.TOMLDecodeError as err:
            raise SpecError(f"{where}: not valid TOML: {err}") from err
        except RecursionError:
            raise SpecError(
                f"{where}: not a spec: its arrays or tables are nested too deeply to read (a spec holds tables "
                f"of keys whose values are numbers, strings, booleans or flat lists)"
            ) from None
        return cls.from_dict(data, where)

    def to_toml(self) -> str:
        """The spec as TOML text, every default filled in (``from_toml`` reads it back)."""
        data = self.to_dict()
        ordered: dict[str, Any] = {k: data[k] for k in ("name", "description") if k in data}
        ordered.update({k: v for k, v in data.items() if k not in ordered})
        return toml_io.dumps(ordered)

    @classmethod
    def load(cls, path: str | Path) -> ModelSpec:
        """A validated spec from a ``.toml`` file."""
        path = Path(path)
        if path.is_dir():
            raise SpecError(f"{path}: is a directory, not a spec file; give a .toml file or a catalogue name")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise SpecError(
                f"{path}: not a spec file: byte {err.start} is not UTF-8 text (a spec is a TOML text file)"
            ) from None
        except (FileNotFoundError, IsADirectoryError):
            raise
        except OSError as err:
            raise SpecError(f"{path}: cannot read the spec file: {err.strerror or err}") from None
        return cls.from_toml(text, where=str(path))

    def save(self, path: str | Path) -> None:
        """Write the spec to ``path`` as TOML."""
        Path(path).write_text(self.to_toml(), encoding="utf-8")

    def replace(self, **changes: Any) -> ModelSpec:
        """A validated copy with top-level fields replaced."""
        return dataclasses.replace(self, **changes).validate()


def unsafe_name_problem(name: str) -> str | None:
    """What makes ``name`` unsafe as one folder name (a path separator, so any absolute
    path; ``.`` or ``..``; a drive; a control character), or ``None`` when it is a plain name.

    A spec's name chooses the run directory (``runs/NAME/...``), so a spec file
    from elsewhere must not be able to point it outside that folder.
    """
    if not name.strip():
        return "is empty"
    if name in (".", ".."):
        return "is a relative path"
    if "/" in name or "\\" in name:
        return "holds a path separator"
    if ":" in name:  # absolute paths hold a separator; 'C:x' names a drive on Windows
        return "holds ':' (a drive or stream separator on Windows)"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "holds a control character"
    if name.startswith("~"):
        return "starts with '~' (a home directory in shells)"
    return None


def _upgrade(data: dict[str, Any], where: str) -> dict[str, Any]:
    """``data`` with old spellings replaced by today's, each with a :class:`DeprecationWarning`."""
    training = data.get("training")
    if isinstance(training, dict) and isinstance(training.get("objective"), str):
        old = training["objective"]
        if old in DEPRECATED_OBJECTIVES:
            new = DEPRECATED_OBJECTIVES[old]
            warnings.warn(
                f"{where}: 'training.objective' = '{old}' is deprecated; write '{new}'",
                DeprecationWarning,
                stacklevel=4,
            )
            data = copy.deepcopy(data)
            data["training"]["objective"] = new
    model = data.get("model")
    if isinstance(model, dict) and "min_logvar" in model:
        if "min_scale" in model:
            raise SpecError(f"{where}: give 'model.min_scale' only (the old 'model.min_logvar' is also there)")
        old = model["min_logvar"]
        if isinstance(old, (int, float)) and not isinstance(old, bool):  # a wrong type: 'unknown key'
            scale = math.exp(0.5 * old)
            warnings.warn(
                f"{where}: 'model.min_logvar' = {old} is deprecated; write the standard-deviation floor "
                f"itself, 'min_scale' = {scale:.6g}",
                DeprecationWarning,
                stacklevel=4,
            )
            data = copy.deepcopy(data)
            data["model"]["min_scale"] = scale
            del data["model"]["min_logvar"]
    return data


__all__ = ["ArchitectureSpec", "DataSpec", "ModelSpec", "NetworkSpec", "SpecError", "TrainingSpec"]
