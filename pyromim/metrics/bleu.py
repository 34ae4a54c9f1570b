"""Corpus BLEU (Papineni et al. 2002) of token sequences against one reference each.

With ``c`` the total hypothesis length, ``r`` the total reference length and
``p_n`` the modified (clipped) ``n``-gram precision pooled over the corpus,

    p_n  = sum_i sum_g min(count_hyp_i(g), count_ref_i(g)) / sum_i sum_g count_hyp_i(g),
    BP   = 1 if c > r else exp(1 - r / c),
    BLEU = BP * exp( (1/N) sum_{n=1..N} log p_n ),

``N = 4`` by default (BLEU-4). No smoothing: a corpus with no matching
``n``-gram of some order scores ``0``, as in the original definition.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence


def _ngrams(tokens: Sequence[Hashable], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(
    hypotheses: Sequence[Sequence[Hashable]], references: Sequence[Sequence[Hashable]], max_order: int = 4
) -> float:
    """Corpus BLEU-``max_order`` of ``hypotheses[i]`` against ``references[i]``, in ``[0, 1]``.

    :param hypotheses: decoded sequences (lists of tokens), one per reference.
    :param references: the data sequences, one reference each.
    :param max_order: ``N``, the longest ``n``-gram counted (uniform weights ``1/N``).
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"corpus_bleu: {len(hypotheses)} hypotheses but {len(references)} references; give one each")
    if max_order < 1:
        raise ValueError(f"corpus_bleu: max_order must be >= 1, got {max_order}")
    matches = [0] * max_order
    totals = [0] * max_order
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references, strict=True):
        hyp_len += len(hyp)
        ref_len += len(ref)
        for n in range(1, max_order + 1):
            hyp_counts, ref_counts = _ngrams(hyp, n), _ngrams(ref, n)
            matches[n - 1] += sum(min(c, ref_counts[g]) for g, c in hyp_counts.items())
            totals[n - 1] += sum(hyp_counts.values())
    if hyp_len == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_order
    brevity = 1.0 if hyp_len > ref_len else math.exp(1.0 - ref_len / hyp_len)
    return brevity * math.exp(log_precision)
