"""SLO arithmetic: availability, error rate, latency, error budgets and multiwindow burn-rate alerts.

Plain numpy, no Django. The input is per-minute buckets of a model's request log, oldest first, the
last bucket ending now: `total` requests, `errors` among them (answered with a server error or not at
all) and `slow` (answered slower than the latency objective, 100 ms). A minute without traffic is a
bucket of zeros, so the position of a bucket is its time.

Objectives (the seed's): availability 99.9%, errors < 0.1%, p99 latency <= 100 ms, over 30 days.

    availability = 1 - errors / total              error rate = errors / total
Counted over requests (as the SRE Workbook recommends), "availability 99.9%" and "errors < 0.1%" are
one objective seen from both sides; they share one error budget. The latency objective is its own:
    p99 <= 100 ms  <=>  at most 1% of requests are slower than 100 ms,
so its bad events are the `slow` ones and its budget is 1% of the requests. The p99 itself, for the
dashboard, comes from a latency histogram (`latency_quantile`, Prometheus' histogram_quantile).

Error budget over a window (30 days):
    allowed = (1 - target) * requests,   remaining = 1 - bad / allowed
(1 = untouched, 0 = spent, negative = overspent).

Burn rate over the last w minutes: how fast the budget goes, 1 meaning exactly spent at the window's end:
    burn(w) = (bad_w / requests_w) / (1 - target)
Multiwindow alerts (SRE Workbook, "Alerting on SLOs", recommended parameters for a 30-day budget):
    page    if burn(1 h) >= 14.4 and burn(5 min) >= 14.4     (2% of the budget in one hour)
    page    if burn(6 h) >= 6    and burn(30 min) >= 6       (5% in six hours)
    ticket  if burn(3 d) >= 1    and burn(6 h) >= 1          (10% in three days)
The long window measures, the short one (1/12 of it) confirms the burn is still going on, so an alert
resets minutes after an incident ends instead of hours.

Low traffic: with 20 requests an hour, one failed request is a 5% error rate, a burn rate of 50, a page
at 3 a.m. for one request. A rule whose long or short window holds fewer than `min_events` requests is
therefore not evaluated: its state is "low traffic" (with the burn rates shown), never "firing".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MINUTES_PER_DAY = 24 * 60
SLO_WINDOW_MINUTES = 30 * MINUTES_PER_DAY

PAGE = "page"
TICKET = "ticket"
FIRING = "firing"
OK = "ok"
LOW_TRAFFIC = "low traffic"


@dataclass(frozen=True)
class Objectives:
    availability: float = 0.999  # share of requests answered without error (errors < 0.1%)
    latency_ms: float = 100.0  # requests slower than this are "slow"
    latency_quantile: float = 0.99  # p99 <= latency_ms  <=>  slow share <= 1%
    window_minutes: int = SLO_WINDOW_MINUTES

    def __post_init__(self):
        if not 0 < self.availability < 1 or not 0 < self.latency_quantile < 1:
            raise ValueError("SLO targets must be in (0, 1)")
        if self.window_minutes < 1:
            raise ValueError("the SLO window must be at least one minute")


@dataclass(frozen=True)
class BurnRule:
    severity: str  # PAGE or TICKET
    factor: float
    long_minutes: int
    short_minutes: int

    @property
    def name(self) -> str:
        return f"{self.factor:g}x over {span(self.long_minutes)} and {span(self.short_minutes)}"


DEFAULT_RULES = (
    BurnRule(PAGE, 14.4, 60, 5),
    BurnRule(PAGE, 6.0, 6 * 60, 30),
    BurnRule(TICKET, 1.0, 3 * MINUTES_PER_DAY, 6 * 60),
)
DEFAULT_MIN_EVENTS = 100


def span(minutes: int) -> str:
    """A window as people say it: "5 min", "6 h", "3 d"."""
    if minutes % MINUTES_PER_DAY == 0:
        return f"{minutes // MINUTES_PER_DAY} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def _buckets(*arrays) -> list[np.ndarray]:
    arrays = [np.asarray(array, dtype=np.int64) for array in arrays]
    shape = arrays[0].shape
    if len(shape) != 1 or any(array.shape != shape for array in arrays):
        raise ValueError("the buckets must be 1-D arrays of the same length (one entry per minute)")
    if any((array < 0).any() for array in arrays):
        raise ValueError("bucket counts cannot be negative")
    if any((array > arrays[0]).any() for array in arrays[1:]):
        raise ValueError("a bucket cannot have more errors or slow requests than requests")
    return arrays


def _last(array: np.ndarray, minutes: int) -> int:
    return int(array[-minutes:].sum()) if minutes > 0 else 0


def ratio(bad: int, total: int) -> float:
    """bad / total, NaN without traffic."""
    return bad / total if total else math.nan


def availability(total, errors, *, minutes: int | None = None) -> float:
    """1 - errors / requests over the last `minutes` buckets (all of them by default); NaN without traffic."""
    total, errors = _buckets(total, errors)
    span = total.size if minutes is None else minutes
    requests = _last(total, span)
    return 1.0 - ratio(_last(errors, span), requests) if requests else math.nan


def error_rate(total, errors, *, minutes: int | None = None) -> float:
    """errors / requests over the last `minutes` buckets; NaN without traffic."""
    total, errors = _buckets(total, errors)
    span = total.size if minutes is None else minutes
    return ratio(_last(errors, span), _last(total, span))


def latency_quantile(upper_bounds, counts, q: float = 0.99) -> float:
    """The q-quantile of a latency histogram, interpolated linearly inside its bucket (histogram_quantile).

    `upper_bounds` are the buckets' upper edges in increasing order (the last may be +inf), `counts` the
    requests per bucket, not cumulative: 1-D, or 2-D (minutes x buckets) summed over the minutes. The
    first bucket starts at 0. A quantile in the +inf bucket is reported as the last finite edge (a lower
    bound: "above 2.5 s"), as Prometheus does. NaN without requests.
    """
    bounds = np.asarray(upper_bounds, dtype=float)
    counts = np.asarray(counts, dtype=float)
    if counts.ndim == 2:
        counts = counts.sum(axis=0)
    if counts.shape != bounds.shape or bounds.ndim != 1 or (np.diff(bounds) <= 0).any():
        raise ValueError("a histogram needs increasing upper bounds and one count per bucket")
    if not 0 < q < 1:
        raise ValueError("q must be in (0, 1)")
    total = counts.sum()
    if total <= 0:
        return math.nan
    rank = q * total
    cumulative = np.cumsum(counts)
    index = int(np.searchsorted(cumulative, rank, side="left"))
    if math.isinf(bounds[index]):
        return float(bounds[index - 1]) if index > 0 else math.nan
    lower = bounds[index - 1] if index > 0 else 0.0
    below = cumulative[index - 1] if index > 0 else 0.0
    return float(lower + (bounds[index] - lower) * (rank - below) / counts[index])


@dataclass(frozen=True)
class ErrorBudget:
    target: float
    requests: int
    bad: int
    allowed: float  # (1 - target) * requests
    remaining: float  # 1 - bad / allowed: 1 untouched, 0 spent, < 0 overspent; NaN without traffic

    @property
    def exhausted(self) -> bool:
        return self.remaining <= 0


def error_budget(total, bad, *, target: float, minutes: int = SLO_WINDOW_MINUTES) -> ErrorBudget:
    """The error budget of the last `minutes` buckets (30 days)."""
    total, bad = _buckets(total, bad)
    requests, failures = _last(total, minutes), _last(bad, minutes)
    allowed = (1.0 - target) * requests
    remaining = 1.0 - failures / allowed if allowed > 0 else math.nan
    return ErrorBudget(target=target, requests=requests, bad=failures, allowed=allowed, remaining=remaining)


def budget_burndown(total, bad, *, target: float, minutes: int = SLO_WINDOW_MINUTES) -> np.ndarray:
    """Remaining budget after each minute of the window, against the whole window's allowance (a chart)."""
    total, bad = _buckets(total, bad)
    allowed = (1.0 - target) * _last(total, minutes)
    spent = np.cumsum(bad[-minutes:])
    return 1.0 - spent / allowed if allowed > 0 else np.full(spent.shape, np.nan)


def burn_rate(total, bad, *, target: float, minutes: int) -> float:
    """(bad / requests over the last `minutes`) / (1 - target); NaN without traffic."""
    total, bad = _buckets(total, bad)
    return ratio(_last(bad, minutes), _last(total, minutes)) / (1.0 - target)


@dataclass(frozen=True)
class RuleResult:
    rule: BurnRule
    state: str  # FIRING, OK or LOW_TRAFFIC
    burn_long: float
    burn_short: float
    requests_long: int
    requests_short: int
    covered_minutes: int  # buckets available for the long window (less than it when history is short)
    reason: str

    @property
    def firing(self) -> bool:
        return self.state == FIRING


def burn_rate_alerts(
    total,
    bad,
    *,
    target: float,
    rules: Sequence[BurnRule] = DEFAULT_RULES,
    min_events: int = DEFAULT_MIN_EVENTS,
) -> list[RuleResult]:
    """Each multiwindow rule's state for one SLO (`bad` = errors for availability, slow for latency)."""
    total, bad = _buckets(total, bad)
    results = []
    for rule in rules:
        long_requests, short_requests = _last(total, rule.long_minutes), _last(total, rule.short_minutes)
        burn_long = ratio(_last(bad, rule.long_minutes), long_requests) / (1.0 - target)
        burn_short = ratio(_last(bad, rule.short_minutes), short_requests) / (1.0 - target)
        long_span, short_span = span(rule.long_minutes), span(rule.short_minutes)
        shown = f"burn {burn_long:.2f} over {long_span}, {burn_short:.2f} over {short_span}"
        if min(long_requests, short_requests) < min_events:
            state = LOW_TRAFFIC
            reason = (
                f"low traffic: {long_requests} requests over {long_span}, {short_requests} over "
                f"{short_span} (at least {min_events} needed in each); {shown}"
            )
        elif burn_long >= rule.factor and burn_short >= rule.factor:
            state, reason = FIRING, f"{shown} >= {rule.factor:g}"
        else:
            state, reason = OK, f"{shown} (fires at {rule.factor:g} in both)"
        results.append(
            RuleResult(
                rule=rule,
                state=state,
                burn_long=burn_long,
                burn_short=burn_short,
                requests_long=long_requests,
                requests_short=short_requests,
                covered_minutes=min(total.size, rule.long_minutes),
                reason=reason,
            )
        )
    return results


def alert_level(results: Sequence[RuleResult]) -> str | None:
    """PAGE if a page rule fires, else TICKET if a ticket rule fires, else None."""
    firing = {result.rule.severity for result in results if result.firing}
    return PAGE if PAGE in firing else TICKET if TICKET in firing else None


@dataclass(frozen=True)
class SLOReport:
    minutes: int
    requests: int
    errors: int
    slow: int
    availability: float
    error_rate: float
    slow_rate: float
    p99_ms: float | None  # from the latency histogram, when given
    availability_budget: ErrorBudget
    latency_budget: ErrorBudget
    availability_alerts: tuple[RuleResult, ...]
    latency_alerts: tuple[RuleResult, ...]
    alert: str | None  # PAGE, TICKET or None, over both SLOs
    low_traffic: bool  # some rule could not be evaluated for lack of requests

    @property
    def meets_objectives(self) -> bool:
        return not self.availability_budget.exhausted and not self.latency_budget.exhausted


def slo_report(
    total,
    errors,
    slow,
    *,
    objectives: Objectives = Objectives(),  # frozen: a shared default is safe
    latency_bounds=None,
    latency_counts=None,
    rules: Sequence[BurnRule] = DEFAULT_RULES,
    min_events: int = DEFAULT_MIN_EVENTS,
) -> SLOReport:
    """Availability, error rate, latency and both budgets over the SLO window, and the burn-rate alerts."""
    total, errors, slow = _buckets(total, errors, slow)
    minutes = objectives.window_minutes
    requests = _last(total, minutes)
    failed, late = _last(errors, minutes), _last(slow, minutes)
    latency_target = objectives.latency_quantile
    availability_alerts = tuple(
        burn_rate_alerts(total, errors, target=objectives.availability, rules=rules, min_events=min_events)
    )
    latency_alerts = tuple(
        burn_rate_alerts(total, slow, target=latency_target, rules=rules, min_events=min_events)
    )
    every = availability_alerts + latency_alerts
    p99 = None
    if latency_bounds is not None and latency_counts is not None:
        counts = np.asarray(latency_counts)
        if counts.ndim == 2:
            counts = counts[-minutes:]
        p99 = latency_quantile(latency_bounds, counts, objectives.latency_quantile)
    return SLOReport(
        minutes=min(minutes, total.size),
        requests=requests,
        errors=failed,
        slow=late,
        availability=1.0 - ratio(failed, requests) if requests else math.nan,
        error_rate=ratio(failed, requests),
        slow_rate=ratio(late, requests),
        p99_ms=p99,
        availability_budget=error_budget(total, errors, target=objectives.availability, minutes=minutes),
        latency_budget=error_budget(total, slow, target=latency_target, minutes=minutes),
        availability_alerts=availability_alerts,
        latency_alerts=latency_alerts,
        alert=alert_level(every),
        low_traffic=any(result.state == LOW_TRAFFIC for result in every),
    )
