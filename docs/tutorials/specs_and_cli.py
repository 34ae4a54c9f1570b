"""Tutorial: swapping priors and likelihoods in a TOML spec, and training from the command line.

Writes a file of over-dispersed counts, takes the catalogue's ``counts_negbin``
spec, writes three variants of it (the likelihood or the prior swapped), trains
each with ``pyromim train`` and compares the held-out metrics each run writes.

    python docs/tutorials/specs_and_cli.py                            # a few minutes on 2 cores
    PYROMIM_TUTORIAL_FAST=1 python docs/tutorials/specs_and_cli.py    # a smoke run
"""

# [data]
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from pyromim.specs import ModelSpec, SpecError, resolve_spec

FAST = os.environ.get("PYROMIM_TUTORIAL_FAST") == "1"  # the test suite's smoke mode
EPOCHS, N_ITEMS, NUM_SAMPLES = (1, 300, 10) if FAST else (10, 1000, 200)
work = Path(os.environ.get("PYROMIM_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="specs_and_cli-"))
work.mkdir(parents=True, exist_ok=True)

# 50 count features from 4 groups of items; each item's rates are its group's
# profile times a gamma-distributed item scale: more spread than Poisson counts have.
rng = np.random.default_rng(0)
labels = rng.integers(0, 4, size=N_ITEMS)
profiles = rng.gamma(2.0, 2.0, size=(4, 50))
rates = profiles[labels] * rng.gamma(2.0, 0.5, size=(N_ITEMS, 1))
counts = rng.poisson(rates * rng.gamma(3.0, 1 / 3.0, size=rates.shape))
np.savez(work / "counts.npz", x=counts.astype(np.int64), labels=labels)
print(f"{N_ITEMS} items, mean count {counts.mean():.2f}, variance {counts.var():.2f}")
# [/data]

# [spec]
base = resolve_spec("counts_negbin")  # a catalogue name or a .toml path
print(base.to_toml())
# [/spec]

# [variants]
text = base.to_toml()
variants = {
    "negbin_mixture": text,  # the catalogue's spec as it is
    "poisson_mixture": text.replace('likelihood = "negative_binomial"', 'likelihood = "poisson"'),
    "negbin_normal": text.replace('prior = "mixture"', 'prior = "normal"'),
}
for name, toml in variants.items():
    spec = ModelSpec.from_toml(toml.replace('name = "counts_negbin"', f'name = "{name}"'), where=name)
    spec.save(work / f"{name}.toml")  # validated: a wrong key or value fails here, not mid-training
# [/variants]

# [typo]
try:
    ModelSpec.from_toml(text.replace('prior = "mixture"', 'prior = "mixtur"'), where="typo.toml")
except SpecError as err:
    print(f"SpecError: {err}")
# [/typo]

# [train]
for name in variants:
    command = [
        sys.executable, "-m", "pyromim", "train", str(work / f"{name}.toml"),
        "--data", str(work / "counts.npz"), "--epochs", str(EPOCHS),
        "--num-samples", str(NUM_SAMPLES), "--out", str(work / name),
        "--no-plots", "--no-progress", "--quiet", "--overwrite",
    ]  # fmt: skip
    print("$ pyromim " + " ".join(command[3:]).replace(str(work) + os.sep, ""))
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
# [/train]

# [results]
keys = ("nll", "psis_khat_bad_fraction", "mi_aggregate", "active_units", "knn5_accuracy")
print(f"{'run':18s}" + "".join(f"{key:>24s}" for key in keys))
for name in variants:
    metrics = json.loads((work / name / "metrics.json").read_text())
    print(f"{name:18s}" + "".join(f"{metrics[key]:24.3f}" for key in keys))
# [/results]
