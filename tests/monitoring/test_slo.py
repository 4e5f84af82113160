"""SLO arithmetic and multiwindow burn-rate alerts on constructed per-minute traffic (no database)."""

import math

import numpy as np
import pytest

from apps.monitoring import slo

DAY = 24 * 60
RATE = 2000  # requests per minute: 1 error a minute is 0.05%


def traffic(minutes: int, error_share: float = 0.0005, *, rate: int = RATE):
    """Steady traffic with a given error share (0.05%: half the 99.9% budget), oldest minute first."""
    total = np.full(minutes, rate, dtype=np.int64)
    errors = np.full(minutes, round(rate * error_share), dtype=np.int64)
    return total, errors


def with_errors(total, errors, *, last_minutes: int, share: float, until: int = 0):
    """Errors at `share` in the `last_minutes` minutes ending `until` minutes ago."""
    errors = errors.copy()
    stop = errors.size - until
    errors[stop - last_minutes : stop] = np.round(total[stop - last_minutes : stop] * share).astype(np.int64)
    return errors


def states(results):
    return [(result.rule.severity, result.rule.long_minutes, result.state) for result in results]


def test_steady_traffic_inside_the_objective_fires_nothing():
    total, errors = traffic(4 * DAY)
    results = slo.burn_rate_alerts(total, errors, target=0.999)
    assert [result.state for result in results] == [slo.OK, slo.OK, slo.OK]
    assert results[0].burn_long == pytest.approx(0.5)
    assert slo.alert_level(results) is None


def test_fast_burn_pages_on_the_one_hour_and_five_minute_windows():
    total, errors = traffic(4 * DAY)
    errors = with_errors(total, errors, last_minutes=60, share=0.02)  # burn 20 over the last hour
    results = slo.burn_rate_alerts(total, errors, target=0.999)
    assert states(results) == [
        (slo.PAGE, 60, slo.FIRING),
        (slo.PAGE, 360, slo.OK),  # 6 h: (60 * 20 + 300 * 0.5) / 360 = 3.75 < 6
        (slo.TICKET, 3 * DAY, slo.OK),
    ]
    assert results[0].burn_long == pytest.approx(20)
    assert results[0].burn_short == pytest.approx(20)
    assert results[1].burn_long == pytest.approx(3.75)
    assert slo.alert_level(results) == slo.PAGE
    assert "burn 20.00 over 1 h, 20.00 over 5 min >= 14.4" in results[0].reason


def test_the_page_resets_once_the_short_window_is_clean():
    total, errors = traffic(4 * DAY)
    errors = with_errors(total, errors, last_minutes=50, share=0.03, until=10)  # incident ended 10 min ago
    results = slo.burn_rate_alerts(total, errors, target=0.999)
    assert results[0].burn_long >= 14.4  # the hour still holds the incident
    assert results[0].burn_short == pytest.approx(0.5)
    assert results[0].state == slo.OK
    assert slo.alert_level(results) is None


def test_slow_burn_pages_on_the_six_hour_and_thirty_minute_windows():
    total, errors = traffic(4 * DAY)
    errors = with_errors(total, errors, last_minutes=360, share=0.008)  # burn 8 for six hours
    results = slo.burn_rate_alerts(total, errors, target=0.999)
    assert states(results) == [
        (slo.PAGE, 60, slo.OK),  # 8 < 14.4
        (slo.PAGE, 360, slo.FIRING),
        (slo.TICKET, 3 * DAY, slo.FIRING),  # 3 d: (360 * 8 + 3960 * 0.5) / 4320 = 1.125, and 6 h: 8
    ]
    assert results[2].burn_long == pytest.approx(1.125)
    assert results[1].burn_long == pytest.approx(8)
    assert results[1].burn_short == pytest.approx(8)
    assert slo.alert_level(results) == slo.PAGE


def test_a_slow_leak_over_days_files_a_ticket_not_a_page():
    total, errors = traffic(4 * DAY, error_share=0.0015)  # burn 1.5, steadily
    results = slo.burn_rate_alerts(total, errors, target=0.999)
    assert states(results) == [
        (slo.PAGE, 60, slo.OK),
        (slo.PAGE, 360, slo.OK),
        (slo.TICKET, 3 * DAY, slo.FIRING),
    ]
    assert results[2].burn_long == pytest.approx(1.5)
    assert slo.alert_level(results) == slo.TICKET


def test_low_traffic_says_so_rather_than_paging_on_one_failed_request():
    total = np.zeros(4 * DAY, dtype=np.int64)
    total[::30] = 1  # two requests an hour (three in the last one, with the failed one)
    errors = np.zeros_like(total)
    errors[-1] = 1
    total[-1] = 1  # the last request of the last minute failed
    results = slo.burn_rate_alerts(total, errors, target=0.999, min_events=100)
    assert [result.state for result in results] == [slo.LOW_TRAFFIC] * 3
    assert results[0].burn_short == pytest.approx(1000)  # 1 of 1 failed: the page rule would have fired
    assert "low traffic: 3 requests over 1 h, 1 over 5 min (at least 100 needed in each)" in results[0].reason
    assert slo.alert_level(results) is None
    # with the minimum lowered to 1, the same traffic pages: the rule, not the arithmetic, holds it back
    assert slo.alert_level(slo.burn_rate_alerts(total, errors, target=0.999, min_events=1)) == slo.PAGE


def test_error_budget_over_thirty_days():
    total, errors = traffic(30 * DAY + 100)
    budget = slo.error_budget(total, errors, target=0.999)
    assert budget.requests == 30 * DAY * RATE  # only the last 30 days count
    assert budget.allowed == pytest.approx(0.001 * 30 * DAY * RATE)
    assert budget.remaining == pytest.approx(0.5)
    assert not budget.exhausted
    overspent = slo.error_budget(
        total, with_errors(total, errors, last_minutes=DAY, share=0.05), target=0.999
    )
    assert overspent.remaining < 0
    assert overspent.exhausted
    burndown = slo.budget_burndown(total, errors, target=0.999)
    assert burndown.shape == (30 * DAY,)
    assert burndown[0] == pytest.approx(1 - 0.5 / (30 * DAY))
    assert burndown[-1] == pytest.approx(0.5)
    assert (np.diff(burndown) <= 0).all()


def test_availability_error_rate_and_burn_rate():
    total = np.array([100, 0, 300, 600])
    errors = np.array([1, 0, 0, 2])
    assert slo.availability(total, errors) == pytest.approx(1 - 3 / 1000)
    assert slo.error_rate(total, errors) == pytest.approx(0.003)
    assert slo.error_rate(total, errors, minutes=2) == pytest.approx(2 / 900)
    assert slo.burn_rate(total, errors, target=0.999, minutes=4) == pytest.approx(3.0)
    assert math.isnan(slo.availability([0, 0], [0, 0]))


def test_latency_quantile_from_a_histogram_by_hand():
    bounds = [10, 25, 50, 100, 250, math.inf]
    counts = [500, 300, 150, 40, 9, 1]  # 1000 requests
    # p99: rank 990 falls in (50, 100] holding ranks 950..990: 50 + 50 * 40 / 40 = 100
    assert slo.latency_quantile(bounds, counts, 0.99) == pytest.approx(100.0)
    # p50: rank 500 is the end of the first bucket: 0 + 10 * 500 / 500
    assert slo.latency_quantile(bounds, counts, 0.5) == pytest.approx(10.0)
    # p95: rank 950, end of (25, 50]
    assert slo.latency_quantile(bounds, counts, 0.95) == pytest.approx(50.0)
    assert slo.latency_quantile(bounds, counts, 0.97) == pytest.approx(50 + 50 * 20 / 40)
    # above the last finite edge: reported as that edge
    assert slo.latency_quantile(bounds, [0, 0, 0, 0, 0, 10], 0.99) == 250.0
    # per-minute rows are summed
    assert slo.latency_quantile(bounds, np.array([counts, counts]), 0.99) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="increasing upper bounds"):
        slo.latency_quantile([10, 5], [1, 1])


def test_slo_report_combines_availability_latency_and_alerts():
    minutes = 31 * DAY
    total, errors = traffic(minutes)
    slow = np.full(minutes, 10, dtype=np.int64)  # 0.5% slower than 100 ms: half the latency budget
    slow[-60:] = 400  # 20% slow in the last hour: latency burn 20
    bounds = [50, 100, 250, math.inf]
    histogram = np.tile([900, 95, 5, 0], (minutes, 1))
    report = slo.slo_report(total, errors, slow, latency_bounds=bounds, latency_counts=histogram)
    assert report.requests == 30 * DAY * RATE
    assert report.availability == pytest.approx(0.9995)
    assert report.error_rate == pytest.approx(0.0005)
    assert report.availability_budget.remaining == pytest.approx(0.5)
    assert report.latency_budget.target == 0.99
    assert report.latency_budget.remaining == pytest.approx(
        1 - (10 * (30 * DAY - 60) + 400 * 60) / (0.01 * report.requests)
    )
    assert report.p99_ms == pytest.approx(50 + 50 * (990 - 900) / 95)
    assert [r.state for r in report.availability_alerts] == [slo.OK] * 3
    assert report.latency_alerts[0].state == slo.FIRING
    assert report.alert == slo.PAGE
    assert not report.low_traffic
    assert report.meets_objectives


def test_bad_buckets_are_clear_errors():
    with pytest.raises(ValueError, match="same length"):
        slo.burn_rate_alerts([1, 2], [0], target=0.999)
    with pytest.raises(ValueError, match="more errors"):
        slo.burn_rate_alerts([1, 2], [0, 3], target=0.999)
    with pytest.raises(ValueError, match="negative"):
        slo.availability([1, -2], [0, 0])
    with pytest.raises(ValueError, match="targets"):
        slo.Objectives(availability=1.0)
