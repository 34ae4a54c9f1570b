import math

import torch
from metrics_models import LinearGaussian, linear_gaussian  # noqa: F401 (pytest fixture)

from pyromim.metrics import marginal_entropy


def test_exact_posterior_gives_the_exact_data_entropy_estimate(linear_gaussian):
    x = torch.randn(500) * 2
    result = marginal_entropy(linear_gaussian.model, linear_gaussian.exact_guide, x)
    # with q(z|x) the exact posterior every one-sample weight equals p(x): no noise at all
    exact = linear_gaussian.log_marginal(x)
    assert torch.allclose(result.per_datum_log_q.float(), exact, atol=1e-5)
    assert math.isclose(result.entropy, -exact.double().mean().item(), abs_tol=1e-5)


def test_prior_proposal_estimates_minus_the_closed_form_elbo(linear_gaussian):
    x = torch.randn(20_000) * 2
    result = marginal_entropy(linear_gaussian.model, linear_gaussian.prior_guide, x)
    # q(z|x) = p(z): the ELBO is E_z log N(x; W z + B, SP^2) with z ~ N(0, 1), i.e.
    # -1/2 log(2 pi SP^2) - ((x - B)^2 + W^2) / (2 SP^2)
    W, B, SP = 2.0, 0.5, 0.7
    elbo = -0.5 * math.log(2 * math.pi * SP**2) - ((x.double() - B) ** 2 + W**2) / (2 * SP**2)
    diff = result.per_datum_log_q.double() - elbo
    # independent one-sample errors: their mean is within 5 standard errors of 0
    # (the standard error is estimated from the same 20,000 draws)
    se = diff.std().item() / math.sqrt(len(x))
    assert abs(diff.mean().item()) < 5 * se
    assert math.isclose(result.entropy, -elbo.mean().item(), abs_tol=5 * se)
    # and the estimate is not the exact marginal: the ELBO gap is far larger than the error
    gap = (LinearGaussian.log_marginal(x.float()).double() - elbo).mean().item()
    assert gap > 20 * se
