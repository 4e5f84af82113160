"""Drift statistics between a reference sample (the training data) and a current window of production inputs.

Plain numpy/scipy, no Django: the drift runs (apps/monitoring services and tasks) feed arrays in and store
what comes out.

Bins (numeric)
    Fixed by the reference, never by the current window: the inner edges are the reference quantiles
    k/B (k = 1..B-1, linear interpolation, deduplicated, as `apps.training.pipeline.reference_profile`
    stores them), the bins are closed on the right and the two outer bins are open:
    bin 0 is x <= e_0, bin i is e_{i-1} < x <= e_i, the last is x > e_{B-2}. A production value outside
    the reference range lands in an outer bin; a value sitting on a quantile (a 0/1 flag, a count) keeps
    its own bin. Non-finite values are counted as missing and left out of every statistic.

PSI (population stability index)
    p_i = reference share of bin i, q_i = current share; both clipped below at PSI_EPSILON = 1e-4 (an
    empty bin on either side would give an infinite PSI; the same epsilon on both sides keeps every
    term (q_i - p_i) ln(q_i / p_i) >= 0, so PSI >= 0 and PSI = 0 when the shares are equal):
        PSI = sum_i (q_i - p_i) * ln(q_i / p_i)              (natural log, the industry convention)
    Null PSI: for two samples of n and m rows from the same distribution over B bins,
        PSI * n m / (n + m) ~ chi-square(B - 1),  so  E[PSI] ~ (B - 1) (1/n + 1/m)
    (PSI is Jeffreys' divergence, whose second-order term is the chi-square homogeneity statistic).
    A window of 100 rows against a large reference has E[PSI] = 0.09 over 10 bins: noise alone
    nearly reaches the 0.1 "watch" line. `Thresholds.min_rows_for_psi` therefore asks for the smallest
    window whose null PSI stays below the watch threshold at the 99th percentile:
        chi2.ppf(0.99, B - 1) * (1/n + 1/m) <= psi_watch
    (about 220 rows for 10 bins and a 100k reference) and anything smaller is "not enough data".

JS (Jensen-Shannon divergence, base 2, in [0, 1]) over the same bins, on the raw shares (no epsilon:
    0 log 0 = 0), M = (P + Q) / 2:
        JS = 1/2 sum_i p_i log2(p_i / m_i) + 1/2 sum_i q_i log2(q_i / m_i)
    (scipy.spatial.distance.jensenshannon(p, q, base=2) is sqrt(JS)). For small shifts JS ~ PSI / (8 ln 2).

KS (two-sample Kolmogorov-Smirnov)
    D = sup_x |F_ref(x) - F_cur(x)| over the right-continuous empirical CDFs. The supremum is reached at
    a data point, so with the reference's sorted distinct values a_0 < ... < a_{U-1}:
        D = max_u max( F_ref(a_u) - F_cur(a_u),  F_cur(a_u^-) - F_ref(a_{u-1}) ),   F_ref(a_{-1}) = 0
    where F_cur(a_u) = #{x <= a_u}/m and F_cur(a_u^-) = #{x < a_u}/m. Each candidate is the same
    k1/n - k2/m that scipy.stats.ks_2samp evaluates, so D is bitwise scipy's statistic (scipy rounds it
    to h / lcm(n, m) in the exact regime: equal there to ~1e-17).
    p-value as scipy's method="auto": exact when max(n, m) <= 10,000, otherwise Smirnov's asymptotic
    distribution `scipy.stats.kstwo.sf(D, N)`, N = round(n m / (n + m)). In its far tail (N > 10,000 and
    N D^2 >= 2.2, i.e. p < 0.025) scipy evaluates 2 smirnov(N, D) by a series of N terms, 0.3 to 3 s a
    call; there we use the Maag-Dicaire approximation of the same one-sided tail,
        p = 2 exp(-(6 N D + 1)^2 / (18 N)),
    within 0.2% of scipy for p >= 1e-5 and 1.1% for p >= 1e-14 (tests/monitoring), and 0 beyond
    N D^2 >= 370 as scipy. Decisions use p against alpha ~ 0.01: the tail's digits do not matter. The
    exact value is
    P(D >= d) = the probability that a uniformly random interleaving of the two samples (a lattice path
    from (0, 0) to (n, m), i.e. a draw from C(n+m, n) equally likely orders) touches a point (i, j) with
    |i/n - j/m| >= d; `_ks_exact_pvalue` propagates the path probabilities diagonal by diagonal inside
    the band |i m - j n| < h gcd(n, m) (d rounded to h / lcm(n, m) as scipy does) and adds up the mass
    that leaves it. Cost O((n + m) * band width): a Python loop of n + m numpy steps, up to about a
    second at n = m = 10,000 (scipy's compiled routine is faster, but its exact two-sample distribution
    is not public API; only samples of at most 10,000 rows on both sides take this path). Where scipy's
    exact computation gives up and falls back to the asymptotic value with a warning (seen at D's
    smallest possible value, where the exact p-value is 1), ours stays exact.

How a large window scales (mergeable summaries)
    `ReferenceBins.summarise(chunk)` keeps, per chunk: the B bin counts, the row and missing counts, the
    sum (for the mean) and, for KS, two integer vectors indexed by the reference's distinct values:
    #{x <= a_u} and #{x < a_u}. All of these add: summaries of chunks summed with `+` are exactly the
    summary of the whole window, so PSI, JS, KS and its p-value of a window split over several workers
    are those of the unsplit window. A chunk of m_c rows costs one sort, O(m_c log m_c), and one search
    between it and the U reference values, O(min(m_c, U) log max(m_c, U)), plus O(U) to count. KS
    needs no merge of sorted current values, but a summary is 16 U bytes per feature however large or
    small the chunk (1.6 MB for a 100k-row reference): chunks of at least U rows keep the summaries no
    larger than the data they replace. The reference is sorted once (`ReferenceBins.from_sample`) and
    reused by every run; comparing a summary is O(U + B).

Verdicts (per statistic minimum windows; tiers; persistence)
    "not enough data" below the PSI minimum window (above), never an alert; else "drift" at
    PSI >= psi_drift (0.2), "watch" at PSI >= psi_watch (0.1), and also "watch" when the test (KS, or
    chi-square for categories) is significant after Benjamini-Hochberg across the features
    (q < alpha = 0.01) with an effect of at least `effect_watch` (KS D, or the total variation distance
    for categories, >= 0.1): with a million rows every test is significant, the effect size is what
    matters; the test counts only from `min_rows_test` (50) rows. For categories B is the number of
    reference categories. `persistent(verdicts, k=3, m=5)` says whether k of the last m informative
    windows reached a level: a severe action waits for it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

import numpy as np
from scipy import stats

PSI_EPSILON = 1e-4
KS_EXACT_MAX_N = 10_000  # scipy's 'auto': exact p-value when both samples have at most this many rows

NO_DRIFT = "no drift"
WATCH = "watch"
DRIFT = "drift"
NOT_ENOUGH_DATA = "not enough data"
_LEVEL = {NOT_ENOUGH_DATA: -1, NO_DRIFT: 0, WATCH: 1, DRIFT: 2}

UNSEEN = "__unseen__"


@dataclass(frozen=True)
class Thresholds:
    """The verdict rules' parameters (a model's monitoring settings supply them)."""

    psi_watch: float = 0.1
    psi_drift: float = 0.2
    alpha: float = 0.01  # Benjamini-Hochberg adjusted p-value below which a test is significant
    effect_watch: float = 0.1  # KS D (numeric) or total variation (categorical) for a significant test
    null_quantile: float = 0.99  # the window must keep this quantile of the null PSI below psi_watch
    min_rows_psi: int | None = None  # a fixed minimum window for PSI instead of the null-PSI rule
    min_rows_test: int = 50  # minimum window for the KS / chi-square test to count

    def __post_init__(self):
        if not 0 < self.psi_watch <= self.psi_drift:
            raise ValueError("thresholds need 0 < psi_watch <= psi_drift")
        if not 0 < self.alpha < 1 or not 0 < self.null_quantile < 1:
            raise ValueError("alpha and null_quantile must be in (0, 1)")

    def min_rows_for_psi(self, n_reference: int, bins: int) -> int | None:
        """Smallest current window whose null PSI stays under psi_watch at null_quantile (None: never).

        chi2.ppf(q, B - 1) * (1/n + 1/m) <= psi_watch  <=>  m >= 1 / (psi_watch / chi2.ppf(q, B - 1) - 1/n)
        """
        if self.min_rows_psi is not None:
            return self.min_rows_psi
        if n_reference <= 0 or bins < 2:
            return None
        room = self.psi_watch / _chi2_quantile(self.null_quantile, bins - 1) - 1.0 / n_reference
        if room <= 0:
            return None
        return math.ceil(1.0 / room - 1e-9)


DEFAULT_THRESHOLDS = Thresholds()


@lru_cache(maxsize=256)
def _chi2_quantile(q: float, df: int) -> float:
    return float(stats.chi2.ppf(q, df))


def psi_null(n_reference: int, n_current: int, bins: int) -> float:
    """Expected PSI of two same-distribution samples of n and m rows over B bins: (B - 1)(1/n + 1/m)."""
    if n_reference <= 0 or n_current <= 0:
        return math.inf
    return (bins - 1) * (1.0 / n_reference + 1.0 / n_current)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift between the reference and a window.

    `ks`/`ks_pvalue` for numeric features, `chi2`/`chi2_pvalue` for categorical ones (the other pair is
    None); `pvalue_adjusted` is the Benjamini-Hochberg value across the table's features (the raw p-value
    when compared alone). `psi`/`js` are NaN when the window is empty.
    """

    ks: float | None
    ks_pvalue: float | None
    psi: float
    js: float
    n_reference: int
    n_current: int
    verdict: str
    reason: str = ""
    kind: str = "numeric"
    bins: int = 0
    psi_null: float = math.inf
    min_rows_psi: int | None = None
    chi2: float | None = None
    chi2_pvalue: float | None = None
    pvalue_adjusted: float | None = None
    effect: float | None = None  # KS D or total variation distance
    missing_current: int = 0
    reference_shares: tuple[float, ...] = ()
    current_shares: tuple[float, ...] = ()

    @property
    def pvalue(self) -> float | None:
        return self.chi2_pvalue if self.kind == "categorical" else self.ks_pvalue


# ---------------------------------------------------------------------------------------------------
# Divergences over bin counts


def _shares(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total <= 0:
        return np.full(counts.shape, np.nan)
    return counts / total


def psi_from_counts(reference_counts, current_counts, *, epsilon: float = PSI_EPSILON) -> float:
    """PSI = sum (q - p) ln(q / p) over shares clipped at epsilon on both sides (NaN: a side empty)."""
    p, q = _shares(reference_counts), _shares(current_counts)
    if np.isnan(p).any() or np.isnan(q).any():
        return math.nan
    p, q = np.maximum(p, epsilon), np.maximum(q, epsilon)
    return float(max(np.sum((q - p) * np.log(q / p)), 0.0))


def js_from_counts(reference_counts, current_counts) -> float:
    """Jensen-Shannon divergence base 2 of two count vectors' shares, in [0, 1] (NaN: a side empty)."""
    p, q = _shares(reference_counts), _shares(current_counts)
    if np.isnan(p).any() or np.isnan(q).any():
        return math.nan
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(min(max(0.5 * (kl_p + kl_q), 0.0), 1.0))


def total_variation(reference_counts, current_counts) -> float:
    """1/2 sum |p_i - q_i|: the largest difference in probability the two distributions give one event."""
    p, q = _shares(reference_counts), _shares(current_counts)
    return float(0.5 * np.abs(p - q).sum())


# ---------------------------------------------------------------------------------------------------
# KS


def _ks_exact_pvalue(n: int, m: int, d: float) -> float:
    """P(D >= d) for two samples of n and m rows under the null, by lattice paths (see module)."""
    g = math.gcd(n, m)
    lcm = (n // g) * m
    h = round(d * lcm)
    if h <= 0:
        return 1.0
    limit = h * g  # a point (i, j) is outside when |i m - j n| >= limit
    total = n + m
    outside = 0.0
    counted = np.arange(n + 2, dtype=float)  # i
    remaining = n - counted  # n - i
    lo, mass = 0, np.ones(1)  # diagonal k = i + j holds the alive mass at i = lo .. lo + len(mass) - 1
    for k in range(total):
        size = mass.size
        scaled = mass / (total - k)
        new = np.empty(size + 1)
        new[:-1] = scaled * (counted[lo : lo + size] + (m - k))  # second sample next: (i, j) -> (i, j + 1)
        new[-1] = 0.0
        new[1:] += scaled * remaining[lo : lo + size]  # first sample next: (i, j) -> (i + 1, j)
        k1 = k + 1
        # band on diagonal k1: -limit < i total - k1 n < limit
        # (positions past the lattice, i > n or j > m, hold no mass: a step there has probability 0)
        band_lo = max((k1 * n - limit) // total + 1, lo, k1 - m)
        band_hi = min(-((-(k1 * n + limit)) // total) - 1, lo + size, n)
        if band_hi < band_lo:
            outside += float(new.sum())
            break
        first, stop = band_lo - lo, band_hi - lo + 1
        if first > 0:
            outside += float(new[:first].sum())
        if stop <= size:
            outside += float(new[stop:].sum())
        lo, mass = band_lo, new[first:stop]
    return float(min(max(outside, 0.0), 1.0))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Two-sided p-value of the KS statistic d for samples of n and m rows, as scipy's method='auto'."""
    if n <= 0 or m <= 0:
        return math.nan
    if max(n, m) <= KS_EXACT_MAX_N:
        return _ks_exact_pvalue(n, m, d)
    big, small = sorted([float(n), float(m)], reverse=True)
    en = float(np.round(big * small / (big + small)))
    tail = en * d * d
    if en > KS_EXACT_MAX_N and tail >= 2.2:
        # scipy's kstwo.sf here is 2 smirnov(en, d), an O(en) series: 0.3-3 s a call at en = 1e5-1e6.
        if tail >= 370.0:
            return 0.0  # as scipy
        return float(min(2.0 * math.exp(-((6.0 * en * d + 1.0) ** 2) / (18.0 * en)), 1.0))
    return float(np.clip(stats.kstwo.sf(d, en), 0.0, 1.0))


# ---------------------------------------------------------------------------------------------------
# Mergeable summaries


def _finite(values) -> tuple[np.ndarray, int]:
    values = np.asarray(values, dtype=float).ravel()
    finite = np.isfinite(values)
    if finite.all():
        return values, 0
    return values[finite], int(values.size - finite.sum())


@dataclass(frozen=True, eq=False)
class ColumnSummary:
    """What a chunk of a window contributes; `a + b` is the summary of both chunks.

    The counts add exactly (so PSI, JS and KS of merged chunks are those of the whole window); `total`,
    a float sum kept for the mean, adds up to rounding.
    """

    counts: np.ndarray  # per bin
    n: int
    missing: int
    total: float  # sum of the values (for the mean)
    ks_le: np.ndarray | None = None  # #{x <= a_u} per reference distinct value a_u
    ks_lt: np.ndarray | None = None  # #{x < a_u}

    def __add__(self, other: ColumnSummary) -> ColumnSummary:
        if not isinstance(other, ColumnSummary):
            return NotImplemented
        if self.counts.shape != other.counts.shape or (self.ks_le is None) != (other.ks_le is None):
            raise ValueError("summaries of different references cannot be added")
        if self.ks_le is not None and self.ks_le.shape != other.ks_le.shape:
            raise ValueError("summaries of different references cannot be added")
        return ColumnSummary(
            counts=self.counts + other.counts,
            n=self.n + other.n,
            missing=self.missing + other.missing,
            total=self.total + other.total,
            ks_le=None if self.ks_le is None else self.ks_le + other.ks_le,
            ks_lt=None if self.ks_lt is None else self.ks_lt + other.ks_lt,
        )

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def to_dict(self) -> dict:
        """Plain JSON-able form, to carry a chunk's summary between workers (a Celery chord's results)."""
        return {
            "counts": self.counts.tolist(),
            "n": self.n,
            "missing": self.missing,
            "total": self.total,
            "ks_le": None if self.ks_le is None else self.ks_le.tolist(),
            "ks_lt": None if self.ks_lt is None else self.ks_lt.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ColumnSummary:
        def integers(values):
            return None if values is None else np.asarray(values, dtype=np.int64)

        return cls(
            counts=integers(data["counts"]),
            n=int(data["n"]),
            missing=int(data["missing"]),
            total=float(data["total"]),
            ks_le=integers(data["ks_le"]),
            ks_lt=integers(data["ks_lt"]),
        )


@dataclass(frozen=True, eq=False)
class ReferenceBins:
    """A numeric reference column: its fixed bins, their counts and, for KS, its distinct values."""

    edges: np.ndarray  # inner edges, right-closed bins, len(edges) + 1 bins
    reference_counts: np.ndarray
    n: int
    missing: int = 0
    values: np.ndarray | None = None  # sorted distinct reference values (None: KS unavailable)
    cumulative: np.ndarray | None = None  # #{reference <= values[u]}

    @classmethod
    def from_sample(cls, values, bins: int = 10) -> ReferenceBins:
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins!r}")
        present, missing = _finite(values)
        if present.size == 0:
            raise ValueError("the reference column has no finite values")
        ordered = np.sort(present)
        edges = np.unique(np.quantile(ordered, np.arange(1, bins) / bins))
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))  # already sorted
        distinct = ordered[starts]
        cumulative = np.append(starts[1:], ordered.size).astype(np.int64)
        return cls(
            edges=edges,
            reference_counts=_sorted_bin_counts(ordered, edges),
            n=int(ordered.size),
            missing=missing,
            values=distinct,
            cumulative=cumulative,
        )

    @classmethod
    def from_profile(cls, edges, bin_counts, *, missing: int = 0) -> ReferenceBins:
        """From a stored reference profile's bins (PSI and JS only: KS needs the reference column)."""
        edges = np.asarray(edges, dtype=float)
        counts = np.asarray(bin_counts, dtype=np.int64)
        if counts.shape != (edges.size + 1,) or (np.diff(edges) <= 0).any():
            raise ValueError("a profile needs increasing edges and len(edges) + 1 bin counts")
        return cls(edges=edges, reference_counts=counts, n=int(counts.sum()), missing=missing)

    @property
    def bins(self) -> int:
        return self.edges.size + 1

    def counts(self, values) -> np.ndarray:
        """Bin counts of values (non-finite ones left out)."""
        present, _ = _finite(values)
        return _sorted_bin_counts(np.sort(present), self.edges)

    def summarise(self, values) -> ColumnSummary:
        """The mergeable summary of a chunk: one sort of it, one search between it and the reference.

        The KS counts #{x <= a_u} and #{x < a_u} come from whichever search is cheaper: the reference's
        U values in the sorted chunk (chunk larger than the reference), or the chunk's values in the
        reference, as ranks counted per reference value and accumulated (chunk smaller): x <= a_u
        exactly when #{a < x} <= u, and x < a_u when #{a <= x} <= u. Both give the same integers.
        """
        present, missing = _finite(values)
        ordered = np.sort(present)
        ks_le = ks_lt = None
        if self.values is not None and ordered.size >= self.values.size:
            ks_le = np.searchsorted(ordered, self.values, side="right").astype(np.int64, copy=False)
            ks_lt = ks_le.copy()
            # a_u is in the chunk exactly when the chunk's last value <= a_u equals it
            tied = ordered[np.maximum(ks_le - 1, 0)] == self.values
            tied &= ks_le > 0
            if tied.any():
                ks_lt[tied] = np.searchsorted(ordered, self.values[tied], side="left")
        elif self.values is not None:
            size = self.values.size
            rank_lt = np.searchsorted(self.values, ordered, side="left")  # #{a < x}
            on_value = rank_lt < size
            on_value[on_value] = self.values[rank_lt[on_value]] == ordered[on_value]
            rank_le = rank_lt + on_value  # #{a <= x}
            ks_le = np.cumsum(np.bincount(rank_lt, minlength=size + 1)[:size])
            ks_lt = np.cumsum(np.bincount(rank_le, minlength=size + 1)[:size])
        return ColumnSummary(
            counts=_sorted_bin_counts(ordered, self.edges),
            n=int(ordered.size),
            missing=missing,
            total=float(ordered.sum()),
            ks_le=ks_le,
            ks_lt=ks_lt,
        )

    @cached_property
    def _reference_cdf(self) -> tuple[np.ndarray, np.ndarray]:
        """F_ref(a_u) and F_ref(a_{u-1}) (0 for u = 0), computed once per reference."""
        return self.cumulative / self.n, np.concatenate(([0], self.cumulative[:-1])) / self.n

    def ks(self, summary: ColumnSummary) -> float | None:
        """KS D between the reference and a summarised window (bitwise scipy's statistic)."""
        if self.values is None or summary.ks_le is None or summary.n == 0:
            return None
        m = summary.n
        ref_at, ref_before = self._reference_cdf
        current = np.divide(summary.ks_le, m)
        d_plus = np.max(np.subtract(ref_at, current, out=current))
        current = np.divide(summary.ks_lt, m, out=current)
        d_minus = np.max(np.subtract(current, ref_before, out=current))
        # beyond the last reference value F_ref = 1 >= F_cur, covered by d_plus at a_{U-1}
        return float(max(d_plus, d_minus, 0.0))

    def compare(self, summary: ColumnSummary, *, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> FeatureDrift:
        d = self.ks(summary)
        p = None if d is None else ks_pvalue(d, self.n, summary.n)
        return _judge(
            FeatureDrift(
                ks=d,
                ks_pvalue=p,
                psi=psi_from_counts(self.reference_counts, summary.counts),
                js=js_from_counts(self.reference_counts, summary.counts),
                n_reference=self.n,
                n_current=summary.n,
                verdict=NO_DRIFT,
                kind="numeric",
                bins=self.bins,
                pvalue_adjusted=p,
                effect=d,
                missing_current=summary.missing,
                reference_shares=tuple(float(s) for s in _shares(self.reference_counts)),
                current_shares=tuple(float(s) for s in _shares(summary.counts)),
            ),
            thresholds,
            informative_bins=int((self.reference_counts > 0).sum()),
        )


def _sorted_bin_counts(ordered: np.ndarray, edges: np.ndarray) -> np.ndarray:
    cumulative = np.searchsorted(ordered, edges, side="right")
    return np.diff(np.concatenate(([0], cumulative, [ordered.size]))).astype(np.int64)


# ---------------------------------------------------------------------------------------------------
# Categorical features


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _category_counts(values, index: Mapping[str, int], size: int) -> tuple[np.ndarray, int]:
    """Counts per known category (by str(value)) with every unseen category in the last bin; and missing."""
    values = np.asarray(values, dtype=object).ravel()
    distinct, counts = np.unique(values.astype(str), return_counts=True) if values.size else ((), ())
    missing_mask = np.frompyfunc(_is_missing, 1, 1)(values).astype(bool) if values.size else np.zeros(0, bool)
    missing = int(missing_mask.sum())
    if missing:  # None / NaN read as "None" / "nan" above: count them from the mask, not as categories
        distinct, counts = np.unique(values[~missing_mask].astype(str), return_counts=True)
    result = np.zeros(size, dtype=np.int64)
    for name, count in zip(distinct, counts, strict=True):
        result[index.get(str(name), size - 1)] += int(count)
    return result, missing


@dataclass(frozen=True, eq=False)
class CategoryBins:
    """A categorical reference column: its categories (by str(value)) plus one bin for every unseen one."""

    categories: tuple[str, ...]
    reference_counts: np.ndarray  # len(categories) + 1, the last (unseen) is 0
    n: int
    missing: int = 0

    @classmethod
    def from_sample(cls, values) -> CategoryBins:
        values = np.asarray(values, dtype=object).ravel()
        keep = ~np.frompyfunc(_is_missing, 1, 1)(values).astype(bool) if values.size else np.zeros(0, bool)
        if not keep.any():
            raise ValueError("the reference column has no values")
        names, counts = np.unique(values[keep].astype(str), return_counts=True)
        return cls(
            categories=tuple(str(name) for name in names),
            reference_counts=np.append(counts, 0).astype(np.int64),
            n=int(counts.sum()),
            missing=int((~keep).sum()),
        )

    @classmethod
    def from_profile(cls, categories: Mapping[str, int], *, missing: int = 0) -> CategoryBins:
        """From a stored reference profile's {category: count}."""
        names = tuple(sorted(categories))
        counts = np.array([int(categories[name]) for name in names] + [0], dtype=np.int64)
        return cls(categories=names, reference_counts=counts, n=int(counts.sum()), missing=missing)

    @property
    def bins(self) -> int:
        return len(self.categories) + 1

    @property
    def labels(self) -> tuple[str, ...]:
        """The bins' names, in order: the reference categories, then UNSEEN."""
        return (*self.categories, UNSEEN)

    def counts(self, values) -> np.ndarray:
        index = {name: position for position, name in enumerate(self.categories)}
        return _category_counts(values, index, self.bins)[0]

    def summarise(self, values) -> ColumnSummary:
        index = {name: position for position, name in enumerate(self.categories)}
        counts, missing = _category_counts(values, index, self.bins)
        return ColumnSummary(counts=counts, n=int(counts.sum()), missing=missing, total=0.0)

    def compare(self, summary: ColumnSummary, *, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> FeatureDrift:
        chi2, p = chi_square(self.reference_counts, summary.counts) if summary.n else (None, None)
        return _judge(
            FeatureDrift(
                ks=None,
                ks_pvalue=None,
                psi=psi_from_counts(self.reference_counts, summary.counts),
                js=js_from_counts(self.reference_counts, summary.counts),
                n_reference=self.n,
                n_current=summary.n,
                verdict=NO_DRIFT,
                kind="categorical",
                bins=self.bins,
                chi2=chi2,
                chi2_pvalue=p,
                pvalue_adjusted=p,
                effect=total_variation(self.reference_counts, summary.counts) if summary.n else None,
                missing_current=summary.missing,
                reference_shares=tuple(float(s) for s in _shares(self.reference_counts)),
                current_shares=tuple(float(s) for s in _shares(summary.counts)),
            ),
            thresholds,
            informative_bins=len(self.categories),
        )


def chi_square(reference_counts, current_counts) -> tuple[float, float]:
    """Chi-square test of homogeneity on the 2 x K table (categories empty on both sides dropped).

    chi2 = sum over cells (O - E)^2 / E with E = row total * column total / grand total, K - 1 degrees
    of freedom, no continuity correction (scipy.stats.chi2_contingency(..., correction=False)). The
    approximation wants expected counts of about 5 or more: rare categories make it liberal, which is
    one reason a significant test alone only ever raises "watch".
    """
    table = np.vstack([np.asarray(reference_counts, float), np.asarray(current_counts, float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, float(stats.chi2.sf(statistic, table.shape[1] - 1))


# ---------------------------------------------------------------------------------------------------
# Verdicts


def _judge(result: FeatureDrift, thresholds: Thresholds, *, informative_bins: int) -> FeatureDrift:
    """Set psi_null, min_rows_psi, verdict and reason from the statistics (see the module docstring)."""
    bins = max(informative_bins, 2)
    need = thresholds.min_rows_for_psi(result.n_reference, bins)
    base = replace(result, psi_null=psi_null(result.n_reference, result.n_current, bins), min_rows_psi=need)
    if need is None or result.n_current < need:
        reason = (
            f"{result.n_current} rows in the window, {need} needed for PSI over {bins} bins"
            if need is not None
            else f"the reference ({result.n_reference} rows) is too small for PSI over {bins} bins"
        )
        return replace(base, verdict=NOT_ENOUGH_DATA, reason=reason)
    if result.psi >= thresholds.psi_drift:
        return replace(base, verdict=DRIFT, reason=f"PSI {result.psi:.3f} >= {thresholds.psi_drift:g}")
    if result.psi >= thresholds.psi_watch:
        return replace(base, verdict=WATCH, reason=f"PSI {result.psi:.3f} >= {thresholds.psi_watch:g}")
    test = "chi-square" if result.kind == "categorical" else "KS"
    q = result.pvalue_adjusted
    if (
        q is not None
        and result.n_current >= thresholds.min_rows_test
        and q < thresholds.alpha
        and result.effect is not None
        and result.effect >= thresholds.effect_watch
    ):
        return replace(
            base,
            verdict=WATCH,
            reason=f"{test} significant (adjusted p {q:.2g} < {thresholds.alpha:g}) "
            f"with effect {result.effect:.3f} >= {thresholds.effect_watch:g}",
        )
    return replace(base, verdict=NO_DRIFT, reason=f"PSI {result.psi:.3f} < {thresholds.psi_watch:g}")


def benjamini_hochberg(pvalues: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control); None entries stay None.

    With the m available p-values sorted p_(1) <= ... <= p_(m): q_(i) = min_{j >= i} min(1, m p_(j) / j).
    """
    present = [position for position, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    result: list[float | None] = [None] * len(pvalues)
    if present:
        adjusted = stats.false_discovery_control([pvalues[position] for position in present], method="bh")
        for position, q in zip(present, adjusted, strict=True):
            result[position] = float(q)
    return result


def persistent(verdicts: Sequence[str], *, k: int = 3, m: int = 5, level: str = DRIFT) -> bool:
    """Whether at least k of the last m informative windows (oldest first) reached `level`.

    "not enough data" windows are skipped: they neither count for nor against, so a quiet night does
    not reset a persisting drift and cannot make one either.
    """
    if not 1 <= k <= m:
        raise ValueError("persistence needs 1 <= k <= m")
    informative = [verdict for verdict in verdicts if verdict != NOT_ENOUGH_DATA]
    return sum(_LEVEL[verdict] >= _LEVEL[level] for verdict in informative[-m:]) >= k


def worst(verdicts: Sequence[str]) -> str:
    """The most severe verdict of several (a table's or a window's overall verdict)."""
    return max(verdicts, key=_LEVEL.__getitem__, default=NOT_ENOUGH_DATA)


# ---------------------------------------------------------------------------------------------------
# Embeddings


@dataclass(frozen=True)
class EmbeddingDrift:
    """Drift of a vector-valued input: per principal-component projection, and of the centroid distance."""

    components: tuple[FeatureDrift, ...]
    distance: FeatureDrift
    explained_variance_ratio: tuple[float, ...]
    distance_mean_reference: float
    distance_mean_current: float
    distance_shift: float  # relative change of the mean distance to the reference centroid
    psi: float  # the largest PSI of the components and the distance
    js: float  # the largest JS
    n_reference: int
    n_current: int
    verdict: str
    reason: str = ""
    kind: str = "embedding"


@dataclass(frozen=True, eq=False)
class EmbeddingSummary:
    projections: tuple[ColumnSummary, ...]
    distance: ColumnSummary

    def __add__(self, other: EmbeddingSummary) -> EmbeddingSummary:
        if not isinstance(other, EmbeddingSummary):
            return NotImplemented
        return EmbeddingSummary(
            projections=tuple(a + b for a, b in zip(self.projections, other.projections, strict=True)),
            distance=self.distance + other.distance,
        )

    def to_dict(self) -> dict:
        return {
            "projections": [part.to_dict() for part in self.projections],
            "distance": self.distance.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> EmbeddingSummary:
        return cls(
            projections=tuple(ColumnSummary.from_dict(part) for part in data["projections"]),
            distance=ColumnSummary.from_dict(data["distance"]),
        )


def _rows(values) -> tuple[np.ndarray, int]:
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"an embedding is a 2-D array (rows x dimensions), got shape {values.shape}")
    finite = np.isfinite(values).all(axis=1)
    if finite.all():
        return values, 0
    return values[finite], int(values.shape[0] - finite.sum())


@dataclass(frozen=True, eq=False)
class EmbeddingReference:
    """The reference embedding's centroid, top principal components and the bins of its projections.

    Projection on component c: (x - centroid) . v_c, v_c the c-th eigenvector of the reference
    covariance (largest eigenvalues first, sign fixed so its largest loading is positive). Distance:
    ||x - centroid||_2. Each is a numeric column with reference-quantile bins, compared by PSI, JS and KS
    as above; a shift the top components do not see (a new direction) still moves the distance.
    """

    centroid: np.ndarray
    components: np.ndarray  # (k, d)
    explained_variance_ratio: np.ndarray
    projections: tuple[ReferenceBins, ...]
    distance: ReferenceBins
    distance_mean: float

    @classmethod
    def from_sample(cls, values, *, components: int = 3, bins: int = 10) -> EmbeddingReference:
        rows, _ = _rows(values)
        if rows.shape[0] < 2:
            raise ValueError("the reference embedding needs at least 2 complete rows")
        k = min(components, rows.shape[1])
        centroid = rows.mean(axis=0)
        centred = rows - centroid
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / (rows.shape[0] - 1))
        order = np.argsort(eigenvalues)[::-1][:k]
        vectors = eigenvectors[:, order].T
        signs = np.sign(vectors[np.arange(k), np.abs(vectors).argmax(axis=1)])
        vectors = vectors * np.where(signs == 0, 1.0, signs)[:, None]
        total = eigenvalues.sum()
        explained = eigenvalues[order] / total if total > 0 else np.zeros(k)
        projected = centred @ vectors.T
        distances = np.linalg.norm(centred, axis=1)
        return cls(
            centroid=centroid,
            components=vectors,
            explained_variance_ratio=explained,
            projections=tuple(ReferenceBins.from_sample(projected[:, c], bins) for c in range(k)),
            distance=ReferenceBins.from_sample(distances, bins),
            distance_mean=float(distances.mean()),
        )

    def summarise(self, values) -> EmbeddingSummary:
        rows, missing = _rows(values)
        if rows.shape[1] != self.centroid.size:
            raise ValueError(f"expected {self.centroid.size} dimensions, got {rows.shape[1]}")
        centred = rows - self.centroid
        projected = centred @ self.components.T
        distances = np.linalg.norm(centred, axis=1)
        projections = tuple(
            replace(reference.summarise(projected[:, c]), missing=missing)
            for c, reference in enumerate(self.projections)
        )
        return EmbeddingSummary(
            projections=projections, distance=replace(self.distance.summarise(distances), missing=missing)
        )

    def compare(
        self, summary: EmbeddingSummary, *, thresholds: Thresholds = DEFAULT_THRESHOLDS
    ) -> EmbeddingDrift:
        parts = tuple(
            replace(reference.compare(part, thresholds=thresholds), kind=f"pc{c + 1}")
            for c, (reference, part) in enumerate(zip(self.projections, summary.projections, strict=True))
        )
        distance = replace(self.distance.compare(summary.distance, thresholds=thresholds), kind="distance")
        every = (*parts, distance)
        verdict = worst([part.verdict for part in every])
        if any(part.verdict == NOT_ENOUGH_DATA for part in every):
            verdict = NOT_ENOUGH_DATA
        mean_current = summary.distance.mean
        shift = (mean_current - self.distance_mean) / self.distance_mean if self.distance_mean else math.nan
        leading = max(every, key=lambda part: (_LEVEL[part.verdict], np.nan_to_num(part.psi)))
        return EmbeddingDrift(
            components=parts,
            distance=distance,
            explained_variance_ratio=tuple(float(v) for v in self.explained_variance_ratio),
            distance_mean_reference=self.distance_mean,
            distance_mean_current=mean_current,
            distance_shift=shift,
            psi=max(part.psi for part in every),
            js=max(part.js for part in every),
            n_reference=self.distance.n,
            n_current=summary.distance.n,
            verdict=verdict,
            reason=f"{leading.kind}: {leading.reason}",
        )


def compare_embedding(
    reference, current, *, components: int = 3, bins: int = 10, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> EmbeddingDrift:
    """Embedding drift of 2-D arrays (rows x dimensions); see EmbeddingReference."""
    built = EmbeddingReference.from_sample(reference, components=components, bins=bins)
    return built.compare(built.summarise(current), thresholds=thresholds)


# ---------------------------------------------------------------------------------------------------
# Entry points


def compare(
    reference, current, *, bins: int = 10, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> FeatureDrift:
    """KS, PSI and JS of one numeric column (1-D arrays); the p-value is not adjusted (one test)."""
    reference = np.asarray(reference)
    if not _is_numeric(reference):
        raise ValueError("compare() takes a numeric column; use compare_categorical() for categories")
    built = ReferenceBins.from_sample(reference, bins)
    return built.compare(built.summarise(current), thresholds=thresholds)


def compare_categorical(reference, current, *, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> FeatureDrift:
    """Chi-square, PSI and JS over the reference's categories plus one bin for every unseen category."""
    built = CategoryBins.from_sample(reference)
    return built.compare(built.summarise(current), thresholds=thresholds)


Reference = ReferenceBins | CategoryBins | EmbeddingReference
Summary = ColumnSummary | EmbeddingSummary


def build_reference(values, *, bins: int = 10, components: int = 3) -> Reference:
    """The reference of one column, by shape and type: 2-D embedding, numeric bins, else categories."""
    values = np.asarray(values)
    if values.ndim == 2:
        return EmbeddingReference.from_sample(values, components=components, bins=bins)
    if _is_numeric(values):
        return ReferenceBins.from_sample(values, bins)
    return CategoryBins.from_sample(values)


def summarise_table(
    references: Mapping[str, Reference], current: Mapping[str, np.ndarray], *, threads: int | None = None
) -> dict[str, Summary]:
    """Every column's summary, `threads` columns at a time (default: one per CPU).

    The work of a numeric column is one sort and one search, both of which numpy runs without the
    GIL, so the columns of a large window are summarised on all the cores of one process (on 2 cores,
    1M rows x 20 features take about 0.55 s instead of 1 s; bench/bench_drift.py).
    """
    missing = sorted(set(references) - set(current))
    if missing:
        raise ValueError(f"no current data for: {', '.join(missing)}")
    threads = min(len(references), threads or os.cpu_count() or 1)
    if threads <= 1:
        return {name: reference.summarise(current[name]) for name, reference in references.items()}
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="drift") as pool:
        futures = {
            name: pool.submit(reference.summarise, current[name]) for name, reference in references.items()
        }
        return {name: future.result() for name, future in futures.items()}


def compare_summaries(
    references: Mapping[str, Reference],
    summaries: Mapping[str, Summary],
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> dict[str, FeatureDrift | EmbeddingDrift]:
    """Compare every feature, then adjust the features' p-values together (Benjamini-Hochberg) and judge.

    The adjustment covers the numeric (KS) and categorical (chi-square) features; an embedding is judged
    on its own components' PSI (its KS p-values are reported unadjusted).
    """
    missing = sorted(set(references) - set(summaries))
    if missing:
        raise ValueError(f"no current data for: {', '.join(missing)}")
    results = {
        name: reference.compare(summaries[name], thresholds=thresholds)
        for name, reference in references.items()
    }
    tested = [name for name, result in results.items() if isinstance(result, FeatureDrift)]
    adjusted = benjamini_hochberg([results[name].pvalue for name in tested])
    for name, q in zip(tested, adjusted, strict=True):
        result = results[name]
        results[name] = _judge(
            replace(result, pvalue_adjusted=q), thresholds, informative_bins=_informative_bins(result)
        )
    return results


def compare_table(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    *,
    bins: int = 10,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> dict[str, FeatureDrift | EmbeddingDrift]:
    """compare()/compare_categorical()/compare_embedding() of every column, with BH across them."""
    references = {name: build_reference(values, bins=bins) for name, values in reference.items()}
    return compare_summaries(references, summarise_table(references, current), thresholds=thresholds)


def _informative_bins(result: FeatureDrift) -> int:
    """Bins the null PSI counts: those the reference fills (never the unseen-category bin)."""
    return int(sum(share > 0 for share in result.reference_shares))


def _is_numeric(values: np.ndarray) -> bool:
    return np.issubdtype(values.dtype, np.number) and not np.issubdtype(values.dtype, np.bool_)


# ---------------------------------------------------------------------------------------------------
# Prediction shift


@dataclass(frozen=True)
class PredictionShift:
    """Relative change of the mean score and of the decline rate (share of scores >= decline threshold)."""

    mean_reference: float
    mean_current: float
    mean_change: float
    decline_rate_reference: float
    decline_rate_current: float
    decline_rate_change: float
    n_reference: int
    n_current: int
    verdict: str  # "no shift", "shift" or NOT_ENOUGH_DATA
    reason: str = ""


def relative_change(reference: float, current: float) -> float:
    """(current - reference) / |reference|; 0 when both are 0, +-inf when only the reference is 0."""
    if reference == 0:
        return 0.0 if current == 0 else math.copysign(math.inf, current)
    return (current - reference) / abs(reference)


def prediction_shift(
    reference_scores,
    current_scores,
    *,
    decline_threshold: float,
    threshold: float = 0.10,
    min_rows: int = 500,
    min_expected_declines: float = 20.0,
) -> PredictionShift:
    """Shift of the model's output between the reference (holdout) scores and a window's scores.

        mean_change = (mean_cur - mean_ref) / |mean_ref|
        decline_rate_change = (rate_cur - rate_ref) / rate_ref,   rate = #{score >= decline_threshold} / n

    "shift" when either |change| >= threshold (10%). Sample size: below min_rows the verdict is
    "not enough data"; the decline rate counts only when the window should hold at least
    min_expected_declines declines at the reference rate (rate_ref * m): at a 1% decline rate a window
    of 500 rows holds 5 declines, and one more is a "20% change".
    """
    reference, _ = _finite(reference_scores)
    current, _ = _finite(current_scores)
    if reference.size == 0:
        raise ValueError("the reference scores are empty")
    return prediction_shift_of_rates(
        mean_reference=float(reference.mean()),
        decline_rate_reference=float((reference >= decline_threshold).mean()),
        n_reference=int(reference.size),
        mean_current=float(current.mean()) if current.size else math.nan,
        decline_rate_current=float((current >= decline_threshold).mean()) if current.size else math.nan,
        n_current=int(current.size),
        threshold=threshold,
        min_rows=min_rows,
        min_expected_declines=min_expected_declines,
    )


def prediction_shift_of_rates(
    *,
    mean_reference: float,
    decline_rate_reference: float,
    n_reference: int,
    mean_current: float,
    decline_rate_current: float,
    n_current: int,
    threshold: float = 0.10,
    min_rows: int = 500,
    min_expected_declines: float = 20.0,
) -> PredictionShift:
    """prediction_shift() from the means and decline rates alone (what a window's merged summaries hold)."""
    mean_ref, rate_ref = mean_reference, decline_rate_reference
    mean_cur, rate_cur = mean_current, decline_rate_current
    mean_change = relative_change(mean_ref, mean_cur) if n_current else math.nan
    rate_change = relative_change(rate_ref, rate_cur) if n_current else math.nan
    values = dict(
        mean_reference=mean_ref,
        mean_current=mean_cur,
        mean_change=mean_change,
        decline_rate_reference=rate_ref,
        decline_rate_current=rate_cur,
        decline_rate_change=rate_change,
        n_reference=int(n_reference),
        n_current=int(n_current),
    )
    if n_current < min_rows:
        return PredictionShift(
            **values,
            verdict=NOT_ENOUGH_DATA,
            reason=f"{n_current} scores in the window, {min_rows} needed",
        )
    reasons = []
    if abs(mean_change) >= threshold:
        reasons.append(f"mean score {mean_change:+.1%}")
    rate_counts = rate_ref * n_current >= min_expected_declines
    if rate_counts and abs(rate_change) >= threshold:
        reasons.append(f"decline rate {rate_change:+.1%}")
    if reasons:
        return PredictionShift(
            **values, verdict="shift", reason=", ".join(reasons) + f" (>= {threshold:.0%})"
        )
    note = "" if rate_counts else "; too few expected declines to judge the decline rate"
    return PredictionShift(**values, verdict="no shift", reason=f"changes under {threshold:.0%}{note}")
