"""All the plots of one training run, chosen by what the model and data are."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pyromim.data import ArrayDataset, DataSplits
from pyromim.plots.curves import plot_training_curves, read_metrics_csv
from pyromim.plots.data2d import plot_data_2d
from pyromim.plots.images import image_shape, plot_reconstructions, plot_samples
from pyromim.plots.latents import plot_latent_space
from pyromim.plots.sentences import write_sentence_table
from pyromim.specs import ModelSpec

if TYPE_CHECKING:
    from pyromim.models import LatentVariableModel

logger = logging.getLogger(__name__)


def make_run_plots(
    model: LatentVariableModel,
    spec: ModelSpec,
    data: DataSplits,
    out_dir: str | Path,
    *,
    history: Sequence[dict[str, float]] = (),
    metrics_csv: str | Path | None = None,
    warmup_epochs: int = 0,
    title: str = "",
) -> list[Path]:
    """Write the run's PNGs (and, for sentences, a markdown table) into ``out_dir`` and return their paths.

    * ``training_curves.png``: losses per epoch, ``beta`` and learning rate
      (from ``metrics_csv`` when it exists, which also covers resumed runs; else ``history``);
    * ``latent_space.png``: posterior means of the test items (validation, else
      training items, when there is no test part) coloured by label, ellipses for 2-D latents;
    * images (see :func:`pyromim.plots.images.image_shape`): ``reconstructions.png``, ``samples.png``;
    * 2-D data: ``data_reconstructions.png`` (data, reconstructions, samples);
    * sentences (a ``gru`` likelihood on text): ``sentences.md``, data beside their greedy
      reconstructions and decodes of prior draws (:func:`pyromim.plots.write_sentence_table`).
    """
    out_dir = Path(out_dir)
    prefix = f"{title}: " if title else ""
    shown = data.test or data.val or data.train
    rows = list(history)
    if metrics_csv is not None and Path(metrics_csv).is_file():
        rows = read_metrics_csv(metrics_csv) or rows
    paths = [
        plot_training_curves(
            rows, out_dir / "training_curves.png", warmup_epochs=warmup_epochs, title=f"{prefix}training curves"
        )
    ]
    was_training = model.training
    model.eval()
    try:
        paths.append(
            plot_latent_space(
                model,
                shown,
                out_dir / "latent_space.png",
                prior_circles=spec.model.prior == "normal",
                title=f"{prefix}latent space of {shown.name}",
            )
        )
        shape = image_shape(spec)
        if shape is not None:
            paths += _image_plots(model, shown, out_dir, shape, prefix)
        if spec.model.likelihood == "gru" and shown.vocabulary is not None:
            paths.append(
                write_sentence_table(model.model, model.guide, shown.x, shown.vocabulary, out_dir / "sentences.md")
            )
        if tuple(spec.data.shape) == (2,):
            paths.append(
                plot_data_2d(
                    model,
                    shown,
                    out_dir / "data_reconstructions.png",
                    title=f"{prefix}data, reconstructions and samples",
                )
            )
    finally:
        model.train(was_training)
    logger.info("plots: %s", ", ".join(p.name for p in paths))
    return paths


def _image_plots(
    model: LatentVariableModel, shown: ArrayDataset, out_dir: Path, shape: tuple[int, ...], prefix: str
) -> list[Path]:
    """``reconstructions.png`` of the items ``shown`` and ``samples.png`` of the model, as images of ``shape``."""
    reconstructions = plot_reconstructions(
        model,
        shown,
        out_dir / "reconstructions.png",
        shape,
        title=f"{prefix}reconstructions of {shown.name}",
    )
    samples = plot_samples(
        model,
        out_dir / "samples.png",
        shape,
        title=f"{prefix}samples: "
        + ("greedy decodes" if model.likelihood.owns_decoder else "decoder means E[x|z]")
        + " at z ~ p(z)",
    )
    return [reconstructions, samples]
