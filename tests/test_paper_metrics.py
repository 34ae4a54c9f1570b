import math

import torch
from sklearn.neighbors import KNeighborsClassifier

from paper.paper_metrics import PAPER_METRICS, paper_metrics
from pyromim.data import toy4
from pyromim.models import build_model


def test_paper_metrics_agree_with_direct_computations_on_an_untrained_toy_model():
    torch.manual_seed(0)
    model = build_model("toy4")
    data = toy4(seed=2, n_train=2000, n_val=0, n_test=3000)
    metrics = paper_metrics(model, data)
    assert tuple(metrics) == PAPER_METRICS
    x, y = data.test.x, data.test.labels
    with torch.no_grad():
        # posterior-mean reconstruction and KNN, computed independently with the model's own API
        assert math.isclose(metrics["recon_error"], (x - model.reconstruct(x)).norm(dim=-1).mean().item(), rel_tol=1e-5)
        knn = KNeighborsClassifier(5).fit(model.encode(data.train.x).numpy(), data.train.labels.numpy())
        assert math.isclose(metrics["knn5_accuracy"], knn.score(model.encode(x).numpy(), y.numpy()))
        # H_q(x): -mean [log p(x|z) + log p(z) - log q(z|x)], z ~ q(z|x), by hand
        loc, scale = model.posterior(x)
        q = torch.distributions.Normal(loc, scale)
        z = q.sample()
        log_q_x = (
            model.decode(z).log_prob(x)
            + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
            - q.log_prob(z).sum(-1)
        )
        # two independent one-sample estimates over 3000 points: their difference has
        # sd sqrt(2) * sd(log q_x) / sqrt(3000); allow 5 of those (about 0.4 nats here; the
        # sharp check of the estimator itself is in test_metrics_marginal_entropy)
        tolerance = 5 * math.sqrt(2) * log_q_x.std().item() / math.sqrt(len(x))
        assert abs(metrics["h_q_x"] + log_q_x.mean().item()) < tolerance
    assert 0.0 <= metrics["knn5_accuracy_sampled"] <= 1.0 and metrics["recon_error_sampled"] > 0
    assert -0.5 < metrics["mi_ksg"] < math.log(3000)
