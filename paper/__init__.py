"""The MIM paper's experiments, reproduced with pyromim's public API (not part of the installed package).

Run each from the repository root as a module::

    python -m paper.toy_expressiveness --quick
    python -m paper.toy_bottleneck --quick
    python -m paper.entropy_ablation --quick
    python -m paper.digits --quick
    python -m paper.reproduce_paper --jobs 2 --out results/paper

and, beyond the paper, the strong decoders' studies::

    python -m paper.strong_decoders --quick
    python -m paper.collapse_diagnosis --quick

:mod:`paper.sweep` runs independent (setting, objective, seed) runs in worker
processes and appends each finished run to a results file;
:mod:`paper.toy_sweeps` builds the toy sweeps' tasks and reports;
:mod:`paper.paper_metrics` measures the toy figures' metrics; :mod:`paper.plots`
draws the metric panels.
"""
