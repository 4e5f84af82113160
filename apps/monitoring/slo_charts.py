"""The SLO dashboard's figures, built on the server with plotly (the page only hands them to plotly.js).

Each function returns a figure as a plain dict ({"data": [...], "layout": {...}}, NaN as null), ready for
`json_script`. Times are UTC ISO strings; hours without traffic are gaps, not zeros.
"""

import json
from datetime import datetime, timedelta

import numpy as np
import plotly.graph_objects as go

from . import slo

HOUR = 60
COLOURS = {"availability": "#0d6efd", "latency": "#d63384", "target": "#198754", "zero": "#dc3545"}
LAYOUT = {
    "height": 300,
    "margin": {"l": 60, "r": 20, "t": 30, "b": 40},
    "legend": {"orientation": "h", "y": -0.2},
    "hovermode": "x unified",
}


def _plain(figure: go.Figure) -> dict:
    """The figure as a dict for `json_script` (traces are given lists, so they stay readable lists)."""
    return json.loads(figure.to_json())


def _values(array) -> list[float | None]:
    """Numbers for a trace: NaN (no traffic) becomes None, a gap in the line."""
    return [None if np.isnan(value) else round(float(value), 6) for value in np.asarray(array, dtype=float)]


def _hours(start: datetime, count: int) -> list[str]:
    return [(start + timedelta(hours=index)).isoformat() for index in range(count)]


def _per_hour(values: np.ndarray) -> np.ndarray:
    """Sum per hour of per-minute counts (the oldest partial hour dropped, so hours end at the newest)."""
    whole = values.size - values.size % HOUR
    return values[values.size - whole :].reshape(-1, HOUR).sum(axis=1)


def _hour_start(buckets) -> datetime:
    return buckets.start + timedelta(minutes=buckets.minutes % HOUR)


def availability_figure(buckets, objectives: slo.Objectives) -> dict:
    """Availability and the share of fast requests per hour against their targets."""
    total = _per_hour(buckets.total).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        available = np.where(total > 0, 1 - _per_hour(buckets.errors) / total, np.nan)
        fast = np.where(total > 0, 1 - _per_hour(buckets.slow) / total, np.nan)
    x = _hours(_hour_start(buckets), total.size)
    figure = go.Figure(
        [
            go.Scatter(
                x=x,
                y=_values(available * 100),
                name="availability %",
                mode="lines+markers",
                marker={"size": 3},
                line={"color": COLOURS["availability"]},
                connectgaps=False,
            ),
            go.Scatter(
                x=x,
                y=_values(fast * 100),
                name=f"requests under {objectives.latency_ms:g} ms %",
                mode="lines+markers",
                marker={"size": 3},
                line={"color": COLOURS["latency"]},
                connectgaps=False,
            ),
            go.Scatter(
                x=[x[0], x[-1]] if x else [],
                y=[objectives.availability * 100] * (2 if x else 0),
                name=f"availability target {objectives.availability * 100:g}%",
                mode="lines",
                line={"color": COLOURS["target"], "dash": "dash"},
            ),
            go.Scatter(
                x=[x[0], x[-1]] if x else [],
                y=[objectives.latency_quantile * 100] * (2 if x else 0),
                name=f"latency target {objectives.latency_quantile * 100:g}% fast",
                mode="lines",
                line={"color": COLOURS["latency"], "dash": "dot"},
            ),
        ]
    )
    floor = np.nanmin(np.concatenate([available, fast, [objectives.latency_quantile]])) * 100
    figure.update_layout(
        **LAYOUT, yaxis={"title": {"text": "% of requests"}, "range": [max(0, floor - 1), 100.2]}
    )
    return _plain(figure)


def latency_figure(series: dict, objectives: slo.Objectives) -> dict:
    """p99 latency per version per bucket (the serving selectors' timeseries) against the objective."""
    traces = []
    starts = []
    for number, buckets in sorted(series.items()):
        x = [bucket.start.isoformat() for bucket in buckets]
        starts = starts or x
        traces.append(
            go.Scatter(
                x=x,
                y=[bucket.p99_ms for bucket in buckets],
                name=f"v{number} p99 ms",
                mode="lines+markers",
                connectgaps=False,
            )
        )
    if starts:
        traces.append(
            go.Scatter(
                x=[starts[0], starts[-1]],
                y=[objectives.latency_ms] * 2,
                mode="lines",
                name=f"objective {objectives.latency_ms:g} ms",
                line={"color": COLOURS["target"], "dash": "dash"},
            )
        )
    figure = go.Figure(traces)
    figure.update_layout(**LAYOUT, yaxis={"title": {"text": "p99 latency (ms)"}, "rangemode": "tozero"})
    return _plain(figure)


def burndown_figure(buckets, objectives: slo.Objectives) -> dict:
    """Both budgets' remaining share over the 30 days, hour by hour, against the whole window's allowance."""
    x = _hours(_hour_start(buckets), _per_hour(buckets.total).size)
    traces = []
    for name, bad, target in (
        ("error budget", buckets.errors, objectives.availability),
        ("latency budget", buckets.slow, objectives.latency_quantile),
    ):
        remaining = slo.budget_burndown(buckets.total, bad, target=target, minutes=buckets.minutes)
        hourly = remaining[HOUR - 1 + buckets.minutes % HOUR :: HOUR] if remaining.size else remaining
        colour = COLOURS["availability" if name == "error budget" else "latency"]
        traces.append(
            go.Scatter(
                x=x, y=_values(hourly * 100), name=f"{name} remaining %", mode="lines", line={"color": colour}
            )
        )
    if x:
        traces.append(
            go.Scatter(
                x=[x[0], x[-1]],
                y=[0, 0],
                name="spent",
                mode="lines",
                line={"color": COLOURS["zero"], "dash": "dash"},
            )
        )
    figure = go.Figure(traces)
    figure.update_layout(**LAYOUT, yaxis={"title": {"text": "budget remaining %"}})
    return _plain(figure)


BURN_WINDOWS = (5, 30, 60, 6 * 60, 3 * slo.MINUTES_PER_DAY, slo.SLO_WINDOW_MINUTES)


def burn_rates(buckets, objectives: slo.Objectives) -> dict[str, list[dict]]:
    """Each SLO's burn rate over the windows the rules look at (and the whole 30 days)."""
    rates = {}
    for name, bad, target in (
        ("availability", buckets.errors, objectives.availability),
        ("latency", buckets.slow, objectives.latency_quantile),
    ):
        rates[name] = [
            {
                "window": slo.span(minutes),
                "minutes": minutes,
                "burn": slo.burn_rate(buckets.total, bad, target=target, minutes=minutes),
                "requests": int(buckets.total[-minutes:].sum()),
            }
            for minutes in BURN_WINDOWS
        ]
    return rates


def burn_rate_figure(rates: dict[str, list[dict]], rules=slo.DEFAULT_RULES) -> dict:
    """Burn rate per window, per SLO, on a log scale (a burn of 0 has no bar), with each rule's factor as
    a line across the windows."""
    burns = [row["burn"] for rows in rates.values() for row in rows]
    traces = [
        go.Bar(
            x=[row["window"] for row in rows],
            y=[value if value and value > 0 else None for value in _values([row["burn"] for row in rows])],
            name=f"{name} burn rate",
            marker={"color": COLOURS[name]},
        )
        for name, rows in rates.items()
    ]
    windows = [row["window"] for row in next(iter(rates.values()))]
    for factor in sorted({rule.factor for rule in rules}, reverse=True):
        severity = next(rule.severity for rule in rules if rule.factor == factor)
        traces.append(
            go.Scatter(
                x=[windows[0], windows[-1]],
                y=[factor, factor],
                mode="lines",
                name=f"{factor:g}x: {severity}",
                line={"dash": "dash", "color": COLOURS["zero"] if severity == slo.PAGE else "#fd7e14"},
            )
        )
    highest = max([value for value in burns if np.isfinite(value)] + [max(rule.factor for rule in rules)])
    figure = go.Figure(traces)
    figure.update_layout(
        **LAYOUT,
        barmode="group",
        yaxis={
            "title": {"text": "burn rate (1: budget spent in 30 d)"},
            "type": "log",
            "range": [-2, float(np.log10(highest * 3))],  # log axes take their range in powers of 10
        },
    )
    return _plain(figure)
