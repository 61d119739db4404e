"""The checks the reliability tests rely on can fail: each is fed a loss, a duplicate, an extra.

A kill test passes only through these checks; if one of them could not see a
duplicate, every kill test would pass by accident. They run without Kafka.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tests.support.events import events
from tests.support.kills import once_each
from tests.support.system import assert_exact


def test_once_each_accepts_exactly_the_input_in_any_order() -> None:
    expected = np.arange(0, 1000, 10)
    assert once_each(np.random.default_rng(1).permutation(expected), expected) is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda a: np.append(a, a[17]), "1 lines stored more than once"),
        (lambda a: np.delete(a, 5), "1 lost"),
        (lambda a: np.append(a, 5), "1 never written"),
        (lambda a: np.append(np.delete(a, 3), a[4]), "1 lines stored more than once"),  # count still right
    ],
    ids=["duplicate", "loss", "extra", "duplicate-hiding-a-loss"],
)
def test_once_each_names_every_way_the_store_can_differ(change: object, words: str) -> None:
    expected = np.arange(0, 1000, 10)
    problem = once_each(change(expected.copy()), expected)  # type: ignore[operator]
    assert problem is not None and words in problem


class _Stored:
    """A stand-in for ``System`` that already holds ``table`` (assert_exact only waits, then reads)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def wait_for_rows(self, n: int, timeout_s: float) -> pa.Table:
        assert self.table.num_rows == n, f"store holds {self.table.num_rows} events, expected {n}"
        return self.table


def test_assert_exact_refuses_a_duplicate_even_when_the_count_matches() -> None:
    expected = events(50)
    assert_exact(_Stored(expected), expected)  # type: ignore[arg-type]
    doubled = pa.concat_tables([expected.slice(0, 49), expected.slice(0, 1)])  # one lost, one twice
    with pytest.raises(AssertionError, match="duplicates"):
        assert_exact(_Stored(doubled), expected)  # type: ignore[arg-type]
