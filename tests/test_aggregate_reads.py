"""How results read the aggregates at scale (`store.aggregates`): histograms summed and their quantiles taken for
thousands of groups at once, and cell counters summed from a finer grouping to a coarser one, give what the
one-group-at-a-time functions give. Pure: no database."""

from __future__ import annotations

import decimal
import random
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from swarmq.store import aggregates, histograms
from swarmq.store.aggregates import CellSums
from swarmq.store.histograms import Histograms


def _random_rows(
    rng: np.random.Generator, groups: int
) -> tuple[list[tuple[Any, ...]], np.ndarray, np.ndarray, np.ndarray]:
    """Unsorted histogram rows over (condition, replicate, agent) groups, with repeated (group, bucket) pairs,
    single-bucket groups and times in the zero bucket."""
    keys = [(c, r, a) for c in ("b", "a", "c") for r in range(groups) for a in (-1, 0, 1)]
    group, bucket, n = [], [], []
    for g in range(len(keys)):
        for _ in range(int(rng.integers(1, 12))):
            group.append(g)
            bucket.append(int(rng.choice([histograms.ZERO_BUCKET, *range(-20, 60)])))
            n.append(int(rng.integers(1, 40)))
    order = rng.permutation(len(group))
    return keys, np.array(group)[order], np.array(bucket)[order], np.array(n)[order]


def _by_group(
    keys: list[tuple[Any, ...]], group: np.ndarray, bucket: np.ndarray, n: np.ndarray, width: int
) -> dict[tuple[Any, ...], dict[int, int]]:
    out: dict[tuple[Any, ...], dict[int, int]] = {k[:width]: {} for k in keys}  # in the keys' order
    for g, b, k in zip(group.tolist(), bucket.tolist(), n.tolist(), strict=True):
        cell = out.setdefault(keys[g][:width], {})
        cell[b] = cell.get(b, 0) + k
    return out


@pytest.mark.parametrize("dense", [True, False])
def test_quantiles_of_many_groups_are_quantile_group_by_group(
    dense: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not dense:
        monkeypatch.setattr(histograms, "DENSE_CELLS", 0)  # sort and sum with np.unique instead of counting
    rng = np.random.default_rng(21)
    keys, group, bucket, n = _random_rows(rng, 40)
    h = Histograms(keys, *histograms._sorted_cells(group, bucket, n))
    assert np.all(np.diff(h.group * 1000 + h.bucket) > 0)  # sorted by group then bucket, each pair once
    for width in (3, 2, 1):
        want = _by_group(keys, group, bucket, n, width)
        summed = histograms.sum_histograms(h, width)
        assert summed.keys == list(want)  # coarser groups in the order they first appear among the finer
        for q in (0.95, 0.5, 0.0, 1.0):
            got = histograms.quantiles(summed, q)
            # Float for float: the same order statistics, the same interpolation.
            assert got == {k: histograms.quantile(sorted(cells.items()), q) for k, cells in want.items()}


def test_quantiles_of_nothing() -> None:
    empty = np.zeros(0, dtype=np.int64)
    assert histograms.quantiles(Histograms([], empty, empty, empty), 0.95) == {}
    assert histograms.sum_histograms(Histograms([], empty, empty, empty), 1).keys == []


def _cells(rows: list[tuple[Any, ...]]) -> CellSums:
    """CellSums of (condition, replicate, agent) groups with random counters, as `cell_sums` reads them."""
    rng = random.Random(5)
    counts = np.array(
        [[rng.randrange(0, 1000) for _ in aggregates.INT_COUNTERS] for _ in rows], dtype=np.int64
    )
    sums = {
        "seconds_sum": [Decimal(f"{rng.randrange(1, 10**15)}E-{rng.randrange(0, 25)}") for _ in rows],
        "generation_sum": [Decimal(rng.randrange(0, 10**6)) / 7 for _ in rows],
    }
    return CellSums(("condition", "replicate", "agent"), rows, counts, sums)


def test_coarser_cell_sums_are_exact_and_keep_the_order() -> None:
    rows = [(c, r, a) for c in ("control", "baseline") for r in range(30) for a in (-1, 0, 1, 2)]
    cells = _cells(rows)
    for width in (2, 1):
        coarse = aggregates.sum_cells(cells, width)
        keys = list(dict.fromkeys(k[:width] for k in rows))
        assert coarse.keys == keys and coarse.columns == cells.columns[:width]
        for i, key in enumerate(keys):
            members = [j for j, k in enumerate(rows) if k[:width] == key]
            assert coarse.counts[i].tolist() == cells.counts[members].sum(axis=0).tolist()
            with decimal.localcontext() as ctx:
                ctx.prec = 200  # far beyond the sums' digits: the exact total
                for name, values in cells.sums.items():
                    assert coarse.sums[name][i] == sum((values[j] for j in members), Decimal(0))
    # 28 digits (Python's default) would have rounded these totals: a 15-digit value at 1e-24 and one at 1e6.
    assert any(len(s.as_tuple().digits) > 28 for s in aggregates.sum_cells(cells, 1).sums["seconds_sum"])


def test_the_collector_is_paused_only_while_a_report_is_built() -> None:
    import gc

    from swarmq.report.results import collection_paused

    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("a failed query")
    assert gc.isenabled()
    gc.disable()
    try:
        with collection_paused():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()
