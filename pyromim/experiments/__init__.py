"""Experiments from specs: train, evaluate and compare objectives, writing run directories.

The command line (``pyromim train / evaluate / compare``) and the paper's
sweeps (the repository's ``paper/`` folder) call these functions; they are cheap to call many times in one
process (each run has a Pyro param store of its own and leaves the caller's as it was).
"""

from pyromim.experiments.comparison import CompareResult, compare, seed_summary, summarise
from pyromim.experiments.config import RunConfig
from pyromim.experiments.datasets import prepare_data
from pyromim.experiments.encoding import Codes, encode_run, write_codes
from pyromim.experiments.evaluation import EvaluationResult, evaluate_run, load_run_model, load_run_vocabulary
from pyromim.experiments.report import comparison_table, metrics_table, render_table, write_json
from pyromim.experiments.runner import RunResult, run, run_directory, training_spec
from pyromim.infer.objectives import OBJECTIVES, compared_objectives, make_loss, objective_label, objective_name

__all__ = [
    "OBJECTIVES",
    "Codes",
    "CompareResult",
    "EvaluationResult",
    "RunConfig",
    "RunResult",
    "compare",
    "compared_objectives",
    "encode_run",
    "comparison_table",
    "evaluate_run",
    "load_run_model",
    "load_run_vocabulary",
    "make_loss",
    "metrics_table",
    "objective_label",
    "objective_name",
    "prepare_data",
    "render_table",
    "run",
    "run_directory",
    "seed_summary",
    "summarise",
    "training_spec",
    "write_codes",
    "write_json",
]
