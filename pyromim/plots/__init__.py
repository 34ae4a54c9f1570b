"""Plots of training runs and comparisons (needs matplotlib: ``pip install 'pyromim[plots]'``).

Every function writes one PNG (file-only ``Agg`` backend) and returns its path.
"""

from pyromim.plots.comparison import plot_comparison
from pyromim.plots.curves import plot_training_curves, read_metrics_csv
from pyromim.plots.data2d import plot_data_2d
from pyromim.plots.images import image_shape, plot_reconstructions, plot_samples
from pyromim.plots.latents import plot_latent_space
from pyromim.plots.model_comparison import plot_image_model_rows, plot_setting_runs
from pyromim.plots.run_plots import make_run_plots
from pyromim.plots.sentences import write_sentence_table

__all__ = [
    "image_shape",
    "make_run_plots",
    "plot_comparison",
    "plot_data_2d",
    "plot_image_model_rows",
    "plot_latent_space",
    "plot_reconstructions",
    "plot_samples",
    "plot_setting_runs",
    "plot_training_curves",
    "read_metrics_csv",
    "write_sentence_table",
]
