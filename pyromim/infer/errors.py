"""Every error and warning the MIM objectives raise, and the checks that raise them.

* :class:`NonFiniteLossError`: a loss term is NaN or infinite (the message names the
  site and side), and :class:`CollapsedScaleError`, its case of a learned scale that
  has collapsed to a point;
* :class:`NonFiniteDataError`: the data given to the loss hold NaN or infinite values;
* :class:`GuideInputsError`: generated data cannot be handed to the guide unambiguously;
* :class:`TeacherForcingError`: a model's observed site is computed from the data passed
  in (teacher forcing), so the decoder side cannot draw from it;
* :class:`CompilationError`: :class:`~pyromim.infer.JitTrace_MIM` could not compile a pair;
* :class:`CollapsingPriorWarning`: a learned prior's scale is shrinking towards zero.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from pyromim.infer.sites import all_sample_sites, base_distribution

if TYPE_CHECKING:
    from pyromim.infer.mim_traces import MIMTraces
    from pyromim.infer.sides import Side

__all__ = [
    "COLLAPSED_SCALE",
    "PRIOR_SCALE_WARNING",
    "CollapsedScaleError",
    "CollapsingPriorWarning",
    "CompilationError",
    "GuideInputsError",
    "NonFiniteDataError",
    "NonFiniteLossError",
    "TeacherForcingError",
    "check_not_collapsed",
    "describe_non_finite",
    "on_side",
    "side_of",
    "smallest_learned_scale",
    "warn_collapsing_priors",
]


class NonFiniteLossError(ValueError):
    """A MIM loss term is NaN or infinite; the message names the site and side."""


class CollapsingPriorWarning(UserWarning):
    """A learned prior's scale is shrinking towards zero under MIM (see :class:`~pyromim.infer.Trace_MIM`)."""


class CollapsedScaleError(NonFiniteLossError):
    """A learned scale of a prior or guide site has collapsed: the loss is running to minus infinity."""


#: A learned prior scale below this (in any latent dimension) is reported once per site.
PRIOR_SCALE_WARNING = 1e-3
#: A learned prior or guide scale below this stops training (``check_finite``): far below
#: any sensible floor (the reference code floors at 1e-6), and reached only on the way to
#: a zero scale, whose log-density is infinite.
COLLAPSED_SCALE = 1e-10


class NonFiniteDataError(ValueError):
    """The data given to the loss (an observed site's value or an argument) hold NaN or infinite values."""


class GuideInputsError(ValueError):
    """Generated data cannot be matched unambiguously to the guide's arguments."""


class TeacherForcingError(ValueError):
    """A model computes an observed site's distribution from the observed data passed to it,
    so un-conditioned it does not draw from ``p(x|z)`` (the message names the site and the fixes)."""


class CompilationError(RuntimeError):
    """:class:`~pyromim.infer.JitTrace_MIM` could not compile a model/guide pair (the cause is chained)."""


def smallest_learned_scale(fn) -> float | None:
    """Smallest element of a Normal's ``scale`` / a mixture's ``scales`` that requires grad, else None."""
    fn = base_distribution(fn)
    for attribute in ("scale", "scales"):
        scale = getattr(fn, attribute, None)
        if torch.is_tensor(scale) and scale.requires_grad and scale.numel():
            return float(scale.detach().min().item())
    return None


def check_not_collapsed(traces: MIMTraces) -> None:
    """Raise :class:`CollapsedScaleError` when a learned prior or guide scale has fallen below :data:`COLLAPSED_SCALE`."""
    for role, trace in (("prior of latent", traces.enc_model), ("guide", traces.enc_guide)):
        for name, site in all_sample_sites(trace):
            if site["is_observed"]:
                continue
            smallest = smallest_learned_scale(site["fn"])
            if smallest is not None and smallest < COLLAPSED_SCALE:
                raise CollapsedScaleError(
                    f"Trace_MIM: the learned scale of the {role} site '{name}' has collapsed to "
                    f"{smallest:.2g}, so the loss is running to minus infinity (log-densities at a "
                    f"point mass grow without bound) and will turn into NaN. MIM rewards a low-entropy "
                    f"code, and nothing bounds it when the scale has no floor (A-MIM with q_x='data' "
                    f"has no term against it at all). Floor the scale, e.g. scale = softplus(raw) + "
                    f"1e-3 (or exp(raw) + 1e-6 as the MIM reference code does), or keep a prior's "
                    f"scale fixed."
                )


def describe_non_finite(sides: list[Side]) -> str:
    """The message of a :class:`NonFiniteLossError`: which terms of which side are not finite."""
    bad = []
    for side in sides:
        for label, term in side.terms:
            if torch.is_tensor(term) and not torch.isfinite(term).all():
                n_bad = int((~torch.isfinite(term)).sum().item())
                bad.append(f"{label} on the {side.name} side ({n_bad} of {term.numel()} entries non-finite)")
    where = "; ".join(bad) if bad else "an intermediate sum (terms are finite)"
    return (
        f"Trace_MIM: non-finite loss term: {where}. Check the distribution "
        f"parameters at that site (e.g. a zero scale, probabilities of exactly 0 "
        f"or 1, a log-variance without a floor) and the data's support."
    )


def warn_collapsing_priors(model_trace: Any, warned: set[str]) -> None:
    """Warn (:class:`CollapsingPriorWarning`) once per latent site, recorded in ``warned``,
    whose learned prior scale has fallen below :data:`PRIOR_SCALE_WARNING`."""
    for name, site in all_sample_sites(model_trace):
        if site["is_observed"] or name in warned:
            continue
        smallest = smallest_learned_scale(site["fn"])
        if smallest is not None and smallest < PRIOR_SCALE_WARNING:
            warned.add(name)
            warnings.warn(
                f"Trace_MIM: the learned prior of latent site '{name}' has shrunk its scale to "
                f"{smallest:.2g}. MIM's loss has no lower bound when a prior's scale is learned "
                f"without a floor (shrinking the latent space raises log p(z) and log q(z|x) "
                f"together), so the code is being squeezed onto a point while the loss runs to "
                f"minus infinity. Floor the prior's scale (e.g. softplus(raw) + 0.01) or keep it "
                f"fixed.",
                CollapsingPriorWarning,
                stacklevel=2,
            )


_SIDE = "_pyromim_side"


@contextlib.contextmanager
def on_side(side: str) -> Iterator[None]:
    """Tag an exception raised inside with the side of the MIM loss (``"encoder"`` or
    ``"decoder"``) whose traces were being built; :func:`side_of` reads it back."""
    try:
        yield
    except Exception as err:
        if getattr(err, _SIDE, None) is None:
            try:
                setattr(err, _SIDE, side)
            except AttributeError:  # an exception type that takes no attributes
                pass
        raise


def side_of(err: BaseException) -> str | None:
    """The side of the MIM loss an exception was raised on (see :func:`on_side`), else None."""
    return getattr(err, _SIDE, None)
