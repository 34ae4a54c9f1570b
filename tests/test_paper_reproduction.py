"""(slow) The issue's reproduction thresholds on one full toy4 setting: hidden 50, seed 1, MIM vs VAE.

Reference settings (10,000 fresh points per split, up to 200 epochs with early
stopping, batch 128, Adam 1e-3 with Noam warm-up, beta warm-up 3 epochs) and
the reference code's standard-deviation floor. The authors' code re-run gives
MIM MI 6.49 ± 0.03 nats, recon 0.010, KNN-5 0.952; VAE MI 1.09 ± 0.30: the
thresholds below leave room for one seed's spread. About 5 minutes with two
free cores.
"""

import pytest

from paper.sweep import REFERENCE_MIN_SCALE, run_tasks


@pytest.mark.slow
def test_toy4_hidden50_mim_reaches_the_reference_and_the_vae_does_not(tmp_path):
    tasks = [
        {
            "spec": "toy4",
            "hidden": 50,
            "min_scale": REFERENCE_MIN_SCALE,
            "objective": objective,
            "seed": 1,
            "run_dir": str(tmp_path / objective),
        }
        for objective in ("mim", "elbo")
    ]
    records = []
    run_tasks(tasks, records.append, jobs=2)
    results = {r["objective"]: r for r in records}
    assert set(results) == {"mim", "elbo"} and not any("error" in r for r in records), records
    mim, vae = results["mim"]["metrics"], results["elbo"]["metrics"]
    print("MIM", mim, "\nVAE", vae)
    assert mim["mi_ksg"] >= 6.0
    assert mim["recon_error"] <= 0.05
    assert mim["knn5_accuracy"] >= 0.93
    assert vae["mi_ksg"] <= 1.6
