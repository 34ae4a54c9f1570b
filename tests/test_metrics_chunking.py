import pytest

from pyromim.metrics.chunking import block_shape, spans


def test_spans_cover_the_range_once():
    covered = [i for s in spans(10, 3) for i in range(s.start, s.stop)]
    assert covered == list(range(10))


@pytest.mark.parametrize("budget", [1, 100, 10_000, 10**9])
def test_blocks_fit_the_budget_and_prefer_whole_sample_sets(budget):
    data, samples = block_shape(budget, bytes_per_pair=10, num_data=50, num_samples=30)
    assert 1 <= data <= 50 and 1 <= samples <= 30
    if budget >= 10 * 30:  # one datum's samples fit: take them all, fill with data
        assert samples == 30 and data * samples * 10 <= budget
    else:
        assert data == 1


def test_non_positive_budget_is_rejected():
    with pytest.raises(ValueError, match="memory budget must be positive"):
        block_shape(0, 10, 5, 5)
