"""The MIM paper's joint-entropy ("inverse H") ablation on ``toy4``.

The MIM loss bounds a divergence between the encoding and decoding joints
plus the joint entropy of their sample mixture. The ablation moves that
entropy term: "MIM - H" trains MIM without it (per sample
``l(x, z) + log 1/2 [p(x, z) + q(z|x) q(x)]``) and "VAE + H" trains the VAE
with the encoder's joint entropy added (``-ELBO - [log q(z|x) + log q(x)]``),
exactly as the reference code's ``--inv-H-loss`` flag does (see
:mod:`pyromim.infer.entropy_ablation`). The paper's finding: adding the
entropy prevents the VAE's posterior collapse, removing it makes MIM collapse.
Plain MIM and VAE runs of the same settings are in ``toy_expressiveness``.

    python -m paper.entropy_ablation --quick
    python -m paper.entropy_ablation --jobs 16 --out results/entropy_ablation
    python -m paper.entropy_ablation --replot results/entropy_ablation/results.json
"""

import sys

from paper.sweep import sweep_cli
from paper.toy_sweeps import toy_report, toy_tasks

EXPERIMENT = "entropy_ablation"
HIDDEN = (5, 20, 50, 100, 200, 500)
REFERENCE = (
    "Reference (the authors' README figures): VAE + H reaches high MI and clustered latents like MIM; "
    "MIM - H collapses (low MI, poor reconstruction)."
)


def build_tasks(options, out):
    return toy_tasks(
        options, out, spec="toy4", key="hidden", full_settings=HIDDEN, quick_settings=(5, 20), inverse_h=True
    )


def report(results, out):
    return toy_report(
        results, out, key="hidden", x_label="hidden units", log_x=True, figure_setting=50, reference=REFERENCE
    )


if __name__ == "__main__":
    sys.exit(sweep_cli(EXPERIMENT, build_tasks, report, description=__doc__))
