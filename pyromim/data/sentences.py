"""A synthetic sentence corpus with known latent factors and an exact likelihood.

No text corpus can be downloaded everywhere, so sentence models are tested and
benchmarked on draws from a fixed generative process whose factors and
likelihood are known.  A sentence ``x = (w_1, ..., w_L)`` is drawn as

1. a topic ``t`` and a style ``s``, uniformly: ``P(t, s) = 1 / (T S)``
   (10 topics x 4 styles = 40 pairs by default);
2. a length ``L ~ P(L | s)`` on ``min_length..max_length`` (9..15), a
   discretised Gaussian centred at a style-specific length (styles 0..S-1 spread
   evenly from short to long, width 2 tokens);
3. a fixed slot pattern ``c_{s,L} in {function, content}^L`` (drawn once from the
   structure seed; style ``s`` fills a fraction of the slots with content words
   that grows from 0.35 to 0.65 across styles);
4. independently at each position ``i``: a *content* slot draws a word from the
   topic's distribution ``P_C(w | t)`` (mass ``1 - leak`` on the topic's own 20
   words with Dirichlet(1) weights, ``leak`` = 0.1 spread evenly over all 200
   content words); a *function* slot draws from the style's distribution
   ``P_F(w | s)`` (mass ``1 - leak`` on 10 favoured function words of 40, the
   rest evenly).

Given the pair, the tokens are independent, so the likelihood is exact and costs
one gather per pair:

.. math::

    P(x) = \\sum_{t, s} P(t, s)\\, P(L | s) \\prod_{i=1}^{L} P(w_i | c_{s,L,i}, t, s),

computed in float64 by :meth:`SentenceGenerator.log_prob`.  The mutual
information between a sentence and its factors is at most
``H(t, s) = log 40 = 3.69`` nats.  The vocabulary holds the four special tokens,
the 40 function words and the 200 content words (244 tokens); sentences are
stored as :func:`pyromim.data.load_text` stores text: ids, ``<eos>``, ``<pad>`` up to
``max_length + 1 = 16`` columns.

The structure (vocabulary, distributions, slot patterns) depends only on
``structure_seed`` (fixed at 0 for the built-in ``"sentences"`` data set); the
``seed`` of :func:`synthetic_sentences` only chooses the draws.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from pyromim.data.dataset import ArrayDataset, DataSplits
from pyromim.data.text import EOS, PAD, Vocabulary

#: The function words, shared by all styles (each style favours its own subset).
FUNCTION_WORDS: tuple[str, ...] = (
    "the", "a", "an", "this", "that", "these", "those", "some", "every", "each",
    "of", "in", "on", "at", "by", "with", "from", "for", "to", "about",
    "and", "but", "or", "so", "then", "very", "quite", "rather", "really", "always",
    "never", "often", "now", "here", "there", "is", "was", "will", "can", "may",
)  # fmt: skip

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
#: Which factor :func:`synthetic_sentences` gives as labels.
SentenceLabel = Literal["topic", "style", "pair"]


def _content_words(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct pseudo-words of the form consonant-vowel-consonant-vowel-consonant."""
    words: list[str] = []
    seen = set(FUNCTION_WORDS)
    while len(words) < n:
        c = rng.integers(0, len(_CONSONANTS), size=3)
        v = rng.integers(0, len(_VOWELS), size=2)
        word = _CONSONANTS[c[0]] + _VOWELS[v[0]] + _CONSONANTS[c[1]] + _VOWELS[v[1]] + _CONSONANTS[c[2]]
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class SentenceGenerator:
    """The generative process of the module docstring, with exact sampling and likelihood.

    :param n_topics: number of topics ``T``.
    :param n_styles: number of styles ``S``.
    :param words_per_topic: content words owned by each topic (``T * words_per_topic`` in all).
    :param n_function_words: function words used (the first of :data:`FUNCTION_WORDS`, at most 40).
    :param style_words: function words each style favours.
    :param min_length: shortest sentence (tokens, ``<eos>`` not counted).
    :param max_length: longest sentence.
    :param leak: probability mass a slot spreads evenly over all words of its kind.
    :param structure_seed: seed of the structure (words, distributions, slot patterns).
    """

    def __init__(
        self,
        *,
        n_topics: int = 10,
        n_styles: int = 4,
        words_per_topic: int = 20,
        n_function_words: int = 40,
        style_words: int = 10,
        min_length: int = 9,
        max_length: int = 15,
        leak: float = 0.1,
        structure_seed: int = 0,
    ):
        if n_topics < 1 or n_styles < 1 or words_per_topic < 1:
            raise ValueError("n_topics, n_styles and words_per_topic must be at least 1")
        if not 1 <= n_function_words <= len(FUNCTION_WORDS):
            raise ValueError(f"n_function_words must lie in 1..{len(FUNCTION_WORDS)}, got {n_function_words}")
        if not 1 <= style_words <= n_function_words:
            raise ValueError(f"style_words must lie in 1..n_function_words={n_function_words}, got {style_words}")
        if not 1 <= min_length <= max_length:
            raise ValueError(f"need 1 <= min_length <= max_length, got {min_length} and {max_length}")
        if not 0.0 < leak <= 1.0:
            raise ValueError(f"leak must lie in (0, 1], got {leak}")
        self.n_topics, self.n_styles = n_topics, n_styles
        self.min_length, self.max_length = min_length, max_length
        rng = np.random.default_rng(structure_seed)
        function = list(FUNCTION_WORDS[:n_function_words])
        content = _content_words(n_topics * words_per_topic, rng)
        #: The corpus vocabulary: special tokens, function words, then content words (topic by topic).
        self.vocabulary = Vocabulary(function + content)
        n_special = len(self.vocabulary) - len(function) - len(content)
        f_ids = np.arange(n_special, n_special + len(function))
        c_ids = np.arange(n_special + len(function), len(self.vocabulary))
        size = len(self.vocabulary)

        # P_C(w | t): (1 - leak) on the topic's own words, leak evenly over all content words
        p_content = np.zeros((n_topics, size))
        p_content[:, c_ids] = leak / len(c_ids)
        for t in range(n_topics):
            own = c_ids[t * words_per_topic : (t + 1) * words_per_topic]
            p_content[t, own] += (1.0 - leak) * rng.dirichlet(np.ones(words_per_topic))
        # P_F(w | s): (1 - leak) on the style's favoured function words, leak evenly over all of them
        p_function = np.zeros((n_styles, size))
        p_function[:, f_ids] = leak / len(f_ids)
        for s in range(n_styles):
            favoured = rng.choice(f_ids, size=style_words, replace=False)
            p_function[s, favoured] += (1.0 - leak) * rng.dirichlet(np.ones(style_words))
        # P(L | s): a discretised Gaussian of width 2 tokens at a style-specific centre
        lengths = np.arange(max_length + 1)
        centres = np.linspace(min_length, max_length, n_styles) if n_styles > 1 else np.array([min_length])
        p_length = np.exp(-0.5 * ((lengths[None, :] - centres[:, None]) / 2.0) ** 2)
        p_length[:, :min_length] = 0.0
        p_length /= p_length.sum(axis=1, keepdims=True)
        # slot patterns c_{s,L}: 1 = content, 0 = function, -1 beyond the sentence
        fractions = np.linspace(0.35, 0.65, n_styles) if n_styles > 1 else np.array([0.5])
        slots = np.full((n_styles, max_length + 1, max_length), -1, dtype=np.int64)
        for s in range(n_styles):
            for length in range(min_length, max_length + 1):
                k = int(round(fractions[s] * length))
                k = min(max(k, 1), length - 1) if length > 1 else k
                pattern = np.zeros(length, dtype=np.int64)
                pattern[rng.choice(length, size=k, replace=False)] = 1
                slots[s, length, :length] = pattern

        self.p_content = torch.as_tensor(p_content)  #: ``(T, V)`` float64, ``P_C(w | t)`` over vocabulary ids
        self.p_function = torch.as_tensor(p_function)  #: ``(S, V)`` float64, ``P_F(w | s)``
        self.p_length = torch.as_tensor(p_length)  #: ``(S, max_length + 1)`` float64, ``P(L | s)``
        self.slots = torch.as_tensor(slots)  #: ``(S, max_length + 1, max_length)``: 1 content, 0 function, -1 none

    @property
    def n_pairs(self) -> int:
        """The number of (topic, style) pairs, ``T * S``; the mutual information is at most its log."""
        return self.n_topics * self.n_styles

    @property
    def width(self) -> int:
        """Columns of a sentence tensor: ``max_length + 1`` (room for ``<eos>``)."""
        return self.max_length + 1

    def sample(self, n: int, seed: int | np.random.SeedSequence = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw ``n`` sentences: ``(tokens (n, width) long, topic (n,) long, style (n,) long)``."""
        rng = np.random.default_rng(seed)
        topic = torch.as_tensor(rng.integers(0, self.n_topics, size=n))
        style = torch.as_tensor(rng.integers(0, self.n_styles, size=n))
        u_length, u_words = (torch.as_tensor(rng.random(shape)) for shape in ((n, 1), (n, self.max_length)))

        def inverse_cdf(p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
            cdf = torch.cumsum(p, dim=-1)
            return torch.searchsorted(cdf / cdf[:, -1:], u, right=True)

        length = inverse_cdf(self.p_length[style], u_length)[:, 0]
        content = inverse_cdf(self.p_content[topic], u_words)
        function = inverse_cdf(self.p_function[style], u_words)
        slot = self.slots[style, length]  # (n, max_length)
        words = torch.where(slot == 1, content, function)
        tokens = torch.full((n, self.width), PAD, dtype=torch.long)
        tokens[:, : self.max_length] = torch.where(slot >= 0, words, PAD)
        tokens[torch.arange(n), length] = EOS
        return tokens, topic, style

    def _layout(self, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(ids, first <eos>, outside the vocabulary, no <eos>, not <pad> after <eos>)``, the last
        three one flag per row, after checking the shape and that the ids are integers."""
        if tokens.dim() != 2 or tokens.shape[1] < 1:
            raise ValueError(f"sentences must be an (N, width) tensor of token ids, got shape {tuple(tokens.shape)}")
        if tokens.is_floating_point() and not bool((tokens == torch.round(tokens)).all()):
            raise ValueError("sentence token ids must be integers")
        x = tokens.long()
        outside = ((x < 0) | (x >= len(self.vocabulary))).any(dim=1)
        is_eos = x == EOS
        length = is_eos.int().argmax(dim=1)
        after = torch.arange(x.shape[1])[None, :] > length[:, None]
        return x, length, outside, ~is_eos.any(dim=1), (after & (x != PAD)).any(dim=1)

    def well_formed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Which rows are laid out as sentences (corpus ids, ``<eos>``, then ``<pad>``): the rows
        :meth:`log_prob` takes; it gives ``-inf`` to those the generator still cannot produce."""
        _, _, outside, no_eos, trailing = self._layout(tokens)
        return ~(outside | no_eos | trailing)

    def _lengths(self, tokens: torch.Tensor) -> torch.Tensor:
        """Sentence lengths (position of the first ``<eos>``), after checking the layout."""
        _, length, outside, no_eos, trailing = self._layout(tokens)
        if bool(outside.any()):
            raise ValueError(f"token ids must lie in 0..{len(self.vocabulary) - 1} (the corpus vocabulary)")
        if bool(no_eos.any()):
            row = int(no_eos.nonzero()[0])
            raise ValueError(f"sentence {row} has no <eos> (id {EOS}); each row is ids, <eos>, then <pad>")
        if bool(trailing.any()):
            row = int(trailing.nonzero()[0])
            raise ValueError(f"sentence {row} holds tokens other than <pad> after its <eos>")
        return length

    def log_likelihood(self, tokens: torch.Tensor) -> torch.Tensor:
        """``log P(x | t, s)`` for every sentence and pair: an ``(N, T, S)`` float64 tensor."""
        length = self._lengths(tokens)
        x = tokens.long()
        n, width = x.shape
        span = min(width, self.max_length)
        words = x[:, :span]
        capped = length.clamp(max=self.max_length)
        slot = self.slots[:, capped, :span].permute(1, 0, 2)  # (N, S, span)
        log_c = self.p_content.log()[:, words].permute(1, 0, 2)  # (N, T, span)
        log_f = self.p_function.log()[:, words].permute(1, 0, 2)  # (N, S, span)
        log_length = self.p_length.log()[:, capped].T  # (N, S)
        per_position = torch.where(slot[:, None] == 1, log_c[:, :, None, :], log_f[:, None, :, :])
        inside = torch.arange(span)[None, :] < length[:, None]  # (N, span)
        per_position = torch.where(inside[:, None, None, :], per_position, torch.zeros((), dtype=torch.float64))
        out = per_position.sum(dim=-1) + log_length[:, None, :]
        too_long = (length > self.max_length)[:, None, None]
        return torch.where(too_long, torch.full((), -math.inf, dtype=torch.float64), out)

    def log_prob(self, tokens: torch.Tensor) -> torch.Tensor:
        """The exact ``log P(x)`` of each sentence, an ``(N,)`` float64 tensor (``-inf`` off the support)."""
        joint = self.log_likelihood(tokens) - math.log(self.n_pairs)
        return torch.logsumexp(joint.flatten(1), dim=1)

    def posterior(self, tokens: torch.Tensor) -> torch.Tensor:
        """``P(t, s | x)``, an ``(N, T, S)`` float64 tensor (each sentence's pairs sum to 1)."""
        joint = self.log_likelihood(tokens)
        return torch.softmax(joint.flatten(1), dim=1).reshape(joint.shape)

    def factor_decode_errors(self, *, topic: bool = True) -> float:
        """The fewest wrong tokens per sentence, in expectation, of any decode that knows only each
        sentence's topic, style and length (with ``topic=False``: its style and length): the floor
        of a greedy reconstruction from a code that holds those factors and nothing about the
        words drawn.

        Given the factors the words are independent, so the decode that errs least writes each
        slot's most probable word and ``<eos>`` at ``L``; slot ``i`` is then wrong with probability
        ``1 - max_w P(w | c_{s,L,i}, t, s)`` (a content slot's distribution averaged over the
        topics when the topic is not known).  The sum is exact (no draws) and counts positions as
        :func:`pyromim.metrics.greedy_reconstruction` does, up to and including ``<eos>``.  A
        reconstruction with fewer wrong tokens needs a code that carries the words themselves.
        """
        content = self.p_content if topic else self.p_content.mean(dim=0, keepdim=True).expand_as(self.p_content)
        miss_content = 1.0 - content.max(dim=1).values  # (T,)
        miss_function = 1.0 - self.p_function.max(dim=1).values  # (S,)
        n_content = (self.slots == 1).sum(dim=-1).double()  # (S, max_length + 1)
        n_function = (self.slots == 0).sum(dim=-1).double()
        # E over L | s of the wrong slots, for every (t, s)
        per_pair = self.p_length[None] * (
            n_content[None] * miss_content[:, None, None] + (n_function * miss_function[:, None])[None]
        )
        return float(per_pair.sum(dim=-1).mean())

    def nll(self, tokens: torch.Tensor) -> float:
        """The exact mean negative log-likelihood per sentence, in nats: the floor for any model's test NLL."""
        return float(-self.log_prob(tokens).mean())

    def mutual_information(self, n: int = 10_000, seed: int = 0) -> tuple[float, float]:
        """A Monte Carlo estimate of ``I(x; t, s)`` in nats and its standard error, from ``n`` fresh draws.

        ``I = E[log P(x | t, s) - log P(x)]`` with ``(x, t, s)`` drawn jointly;
        it lies between 0 and ``log(T S)``.
        """
        tokens, topic, style = self.sample(n, seed)
        terms = self.log_likelihood(tokens)[torch.arange(n), topic, style] - self.log_prob(tokens)
        return float(terms.mean()), float(terms.std() / math.sqrt(n))

    def dataset(
        self, n: int, seed: int | np.random.SeedSequence = 0, *, label: SentenceLabel = "topic", name: str = "sentences"
    ) -> ArrayDataset:
        """``n`` fresh sentences as ``"tokens"`` data labelled by ``label`` (topic, style or pair ``t * S + s``)."""
        tokens, topic, style = self.sample(n, seed)
        labels = {"topic": topic, "style": style, "pair": topic * self.n_styles + style}
        if label not in labels:
            raise ValueError(f"label must be one of {sorted(labels)}, got {label!r}")
        return ArrayDataset(tokens, "tokens", labels[label], name, vocabulary=self.vocabulary)


def synthetic_sentences(
    *,
    seed: int = 0,
    n_train: int = 10_000,
    n_val: int = 1_000,
    n_test: int = 1_000,
    label: SentenceLabel = "topic",
    generator: SentenceGenerator | None = None,
) -> DataSplits:
    """Train, validation and test sentences drawn afresh from ``seed`` (the built-in ``"sentences"`` set).

    :param label: the factor given as labels: ``"topic"`` (10 classes), ``"style"`` (4)
        or ``"pair"`` (``topic * 4 + style``, 40).
    :param generator: the process to draw from (default: ``SentenceGenerator()``, the
        built-in corpus); its :meth:`~SentenceGenerator.log_prob` is the exact likelihood.
    """
    generator = SentenceGenerator() if generator is None else generator
    # independent streams for the three parts, so changing n_val leaves train unchanged
    streams = np.random.SeedSequence(seed).spawn(3)
    parts = [
        generator.dataset(n, stream, label=label, name=f"sentences ({part})") if n > 0 else None
        for n, stream, part in zip((n_train, n_val, n_test), streams, ("train", "val", "test"))
    ]
    if parts[0] is None:
        raise ValueError(f"n_train must be at least 1, got {n_train}")
    return DataSplits(train=parts[0], val=parts[1], test=parts[2])
