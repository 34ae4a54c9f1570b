"""Plug-in use: MIM on your own Pyro program, evaluated and exported to ArviZ.

A probabilistic PCA written from scratch (no pyromim building blocks) on
scikit-learn's bundled wine data (178 wines, 13 standardised chemical
measurements, 3 cultivars):

    z ~ N(0, I_2),   x | z ~ N(W z + mu, sigma^2 I),   q(z | x) = N(A x + c, diag(s^2))

It is trained in a plain ``SVI`` loop once with ``Trace_ELBO`` and once with
``Trace_MIM`` (the only line that changes), then measured with
``pyromim.metrics.evaluate`` (importance-sampled NLL, mutual information,
active units, KNN accuracy on the latent means with the cultivar as label,
reconstruction error) and exported with ``to_inference_data`` for
``az.summary`` and ``az.plot_posterior``.

    python examples/plug_in_model.py --out runs/plug_in          # full (about a minute)
    python examples/plug_in_model.py --quick --out runs/plug_in  # quick mode: 10 s

The full run's minute was measured on 2 CPU cores whose load was not recorded
(not re-measured); the quick mode's 10 s with ``OMP_NUM_THREADS=1`` on 2 CPU cores shared with other work (load average about 5).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyro  # noqa: E402
import pyro.distributions as dist  # noqa: E402
import torch  # noqa: E402
from pyro.infer import SVI, Trace_ELBO  # noqa: E402
from sklearn.datasets import load_wine  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from tqdm import trange  # noqa: E402

from pyromim import Trace_MIM  # noqa: E402
from pyromim.metrics import evaluate, to_inference_data  # noqa: E402

K = 2  # latent dimensions
D = 13  # wine measurements


def model(x):
    W = pyro.param("W", 0.1 * torch.randn(D, K))
    mu = pyro.param("mu", torch.zeros(D))
    sigma = pyro.param("sigma", torch.ones(()), constraint=dist.constraints.positive)
    with pyro.plate("wines", x.shape[-2]):
        z = pyro.sample("z", dist.Normal(torch.zeros(K), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z @ W.T + mu, sigma).to_event(1), obs=x)


def guide(x):
    A = pyro.param("A", 0.1 * torch.randn(K, D))
    c = pyro.param("c", torch.zeros(K))
    s = pyro.param("s", torch.ones(K), constraint=dist.constraints.interval(1e-3, 10.0))
    with pyro.plate("wines", x.shape[-2]):
        pyro.sample("z", dist.Normal(x @ A.T + c, s).to_event(1))


def wine(seed: int):
    data = load_wine()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.3, random_state=seed, stratify=data.target
    )
    scaler = StandardScaler().fit(x_train)
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return as_tensor(scaler.transform(x_train)), as_tensor(scaler.transform(x_test)), y_train, y_test


def train(loss, x, steps: int, seed: int, name: str) -> None:
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.01}), loss=loss)
    for _ in trange(steps, desc=name, leave=False):
        svi.step(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds")
    parser.add_argument("--out", type=Path, default=Path("runs/plug_in"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    steps, num_samples = (100, 50) if args.quick else (3000, 1000)
    args.out.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = wine(args.seed)

    results = {}
    for name, loss in [("ELBO", Trace_ELBO()), ("MIM", Trace_MIM())]:
        train(loss, x_train, steps, args.seed, name)
        results[name] = evaluate(model, guide, x_test, y_test, x_train, y_train, num_samples=num_samples)
        idata = to_inference_data(model, guide, x_test, num_samples=200, num_chains=2)
        print(f"\n{name}: az.summary of the first two wines' latent draws")
        print(az.summary(idata, var_names=["z"], coords={"datum": [0, 1]}, kind="stats").to_string())
        axes = az.plot_posterior(idata, var_names=["z"], coords={"datum": [0]})
        figure = axes.ravel()[0].figure
        figure.suptitle(f"q(z | first test wine), trained with {name}", y=1.0)
        figure.tight_layout()
        figure.savefig(args.out / f"posterior_{name.lower()}.png", dpi=90)
        plt.close(figure)

    keys = list(next(iter(results.values())))
    print(f"\n{'metric':24s}" + "".join(f"{n:>12s}" for n in results))
    for key in keys:
        print(f"{key:24s}" + "".join(f"{results[n][key]:12.3f}" for n in results))
    print(f"\nposterior plots in {args.out}/posterior_*.png")


if __name__ == "__main__":
    main()
