"""Writing results: JSON files (strict JSON: non-finite numbers become ``null``) and tables."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyromim._atomic import atomic_write_text
from pyromim._integrity import CheckpointError, one_line, verify
from pyromim.metrics.likelihood import KHAT_THRESHOLD, NLL_KEYS, UNRELIABLE_FRACTION, nll_unreliable

#: The field of a checked JSON file (``run.json``) holding the SHA-256 of the others.
CHECKSUM_FIELD = "sha256"

#: How to read each metric of :func:`pyromim.metrics.evaluate` (shown under tables).
METRIC_NOTES = {
    "nll": "nats per item, lower is better",
    "nll_bits_per_dim": "bits per data dimension, lower is better",
    "psis_khat_bad_fraction": "share of items with PSIS k > 0.7 (unreliable NLL), lower is better",
    "mi_ksg": "KSG estimate of I(x; z), nats",
    "mi_aggregate": "I(x; z) under the encoder's aggregate posterior, nats",
    "active_units": "latent dims whose posterior mean varies over the data",
    "knn5_accuracy": "5-NN label accuracy on posterior means, higher is better",
    "recon_error": "mean ||x - x_hat||, lower is better",
    "consistency": "share of latent variance the encoder recovers from data the model generates, higher is better",
    "mi_aggregate_se": "standard error of mi_aggregate over the items (the MI itself is never below 0)",
    "consistency_se": "standard error of consistency over the items",
    "nll_per_token": "nats per token (each sequence's tokens up to and including <eos>), lower is better",
    "perplexity": "exp(total NLL / total tokens), lower is better",
    "rate": "mean KL(q(z|x) || p(z)), nats; about 0 when the code has collapsed",
    "code_gap": "log p(x|z) at the posterior mean minus its mean over prior draws, nats; about 0 when z is ignored",
    "token_accuracy": "share of tokens right in the greedy decode from the posterior mean (no data fed in)",
    "wrong_tokens": "wrong tokens per sequence in that decode, lower is better",
    "bleu4": "corpus BLEU-4 of that decode against the data, higher is better",
    "pixel_error_rate": "share of pixels wrong in the greedy decode from the posterior mean, lower is better",
}

#: What follows an unreliable NLL in tables.
UNRELIABLE_MARK = "(unreliable)"
#: The note explaining :data:`UNRELIABLE_MARK`.
UNRELIABLE_NOTE = (
    f"{UNRELIABLE_MARK}: more than {UNRELIABLE_FRACTION:.0%} of the items have a PSIS k-hat above "
    f"{KHAT_THRESHOLD} (psis_khat_bad_fraction), so this importance-sampled NLL is not a valid estimate; "
    f"it errs only upwards on average (an upper bound), so compare it only as a bound"
)


def _estimate_note(key: str, value: float | None, stderr: float | None) -> str:
    """What a negative ``mi_aggregate`` or ``consistency`` means, given its standard error."""
    if value is None or not math.isfinite(value) or value >= 0 or key not in ("mi_aggregate", "consistency"):
        return ""
    se = f"standard error {stderr:.2g}" if stderr is not None and math.isfinite(stderr) else "no standard error"
    if key == "mi_aggregate":
        return f"; below 0 only by estimator noise around 0 ({se}): the MI itself is never negative"
    if stderr is not None and math.isfinite(stderr) and value >= -2 * stderr:
        return f"; below 0 by estimator noise ({se}): the encoder recovers no latent variance"
    return f"; below 0 beyond its noise ({se}): the encoder's means are worse than the constant mean of z"


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _plain(value.item())
    return value


def _json_sha256(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def write_json(path: str | Path, data: Any, *, checksum: bool = False) -> Path:
    """Write ``data`` as indented strict JSON through a temporary file (atomic replace).

    :param checksum: add a ``"sha256"`` field over the other fields of the dict
        ``data``, which ``read_checked_json`` in this module verifies.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = _plain(data)
    if checksum:
        plain = {k: v for k, v in plain.items() if k != CHECKSUM_FIELD}
        plain[CHECKSUM_FIELD] = _json_sha256(plain)
    text = json.dumps(plain, indent=2, allow_nan=False) + "\n"
    write_text(path, text)
    return path


def read_checked_json(path: str | Path) -> dict[str, Any]:
    """The dict a ``write_json(..., checksum=True)`` wrote, its checksum verified.

    :raises pyromim.models.CheckpointError: in one line naming the file, if it is not
        JSON, has no checksum or its content changed after writing.
    """
    path = Path(path)
    advice = "restore the file or train the run again"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: refused to read: not a JSON file ({one_line(err)}); {advice}") from err
    if not isinstance(data, dict):
        data = {}  # refused below: no checksum
    verify(path, data.pop(CHECKSUM_FIELD, None), _json_sha256(data), advice)
    return data


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a reader sees the old or the new file, never half)."""
    return atomic_write_text(path, text)


def format_value(value: float | None, std: float | None = None) -> str:
    """``1.234`` or ``1.234 ± 0.056``; ``n/a`` for a missing or non-finite value."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if isinstance(value, int) and std is None:  # counts such as active_units
        return str(value)
    digits = 4 if abs(value) < 10 else 2
    text = f"{value:.{digits}f}"
    if std is not None and math.isfinite(std):
        text += f" ± {std:.{digits}f}"
    return text


def render_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool = False, left: Sequence[int] = (0,)
) -> str:
    """A text or Markdown table; columns in ``left`` are left-aligned, the others right-aligned."""
    if markdown:
        rule = ["---" if i in left else "---:" for i in range(len(header))]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = lambda r: "  ".join(  # noqa: E731
        (c.ljust(w) if i in left else c.rjust(w)) for i, (c, w) in enumerate(zip(r, widths))
    ).rstrip()
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]) + "\n"


def metrics_table(metrics: Mapping[str, float], *, markdown: bool = False) -> str:
    """A table ``metric | value | meaning`` with a short note on each metric.

    An NLL whose ``psis_khat_bad_fraction`` exceeds 0.3 is marked unreliable
    (:func:`pyromim.metrics.nll_unreliable`); a negative ``mi_aggregate`` or
    ``consistency`` is explained with its standard error (``*_se``).
    """
    unreliable = nll_unreliable(metrics.get("psis_khat_bad_fraction"))
    rows = []
    for k, v in metrics.items():
        value, note = format_value(v), METRIC_NOTES.get(k, "")
        if unreliable and k in NLL_KEYS:
            value = f"{value} {UNRELIABLE_MARK}"
            note = (
                f"not a valid estimate: {metrics['psis_khat_bad_fraction']:.0%} of the items have a PSIS k-hat "
                f"above {KHAT_THRESHOLD} (more than {UNRELIABLE_FRACTION:.0%}); only an upper bound on average, "
                "the true value may be much lower; more importance samples may make it valid"
            )
        rows.append([k, value, note + _estimate_note(k, v, metrics.get(f"{k}_se"))])
    return render_table(["metric", "value", "meaning"], rows, markdown=markdown, left=(0, 2))


def comparison_table(
    summary: Mapping[str, Mapping[str, Mapping[str, float]]],
    metrics: Sequence[str],
    *,
    labels: Mapping[str, str] | None = None,
    markdown: bool = False,
) -> str:
    """Metrics as rows, objectives as columns, cells ``mean ± std`` over seeds.

    An objective's NLL cells are marked :data:`UNRELIABLE_MARK` when its mean
    ``psis_khat_bad_fraction`` exceeds 0.3 (see :data:`UNRELIABLE_NOTE`).
    """
    labels = dict(labels or {})
    objectives = list(summary)
    header = ["metric"] + [labels.get(o, o) for o in objectives]
    rows = []
    for metric in metrics:
        cells = [metric]
        for o in objectives:
            stats = summary[o].get(metric, {})
            cell = format_value(stats.get("mean"), stats.get("std"))
            if metric in NLL_KEYS and nll_unreliable(summary[o].get("psis_khat_bad_fraction", {}).get("mean")):
                cell += f" {UNRELIABLE_MARK}"
            cells.append(cell)
        rows.append(cells)
    return render_table(header, rows, markdown=markdown)
