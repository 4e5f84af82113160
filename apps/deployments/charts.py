"""The rollout chart: canary against stable error rate and p99 latency over time, with the SLO lines and
the step markers, built on the server as a Plotly figure the page hands to plotly.js as it is.

Plain Python over buckets of numbers (no Django), so the figure can be checked from known data.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from plotly import graph_objects as go
from plotly.subplots import make_subplots

# The seed's SLOs (issue 9 item 4), drawn when the rollout's policy does not say otherwise.
ERROR_RATE_SLO = 0.001
P99_SLO_MS = 100.0
# Few enough points for a readable line over any rollout, many enough to see a step's effect.
MAX_BUCKETS = 120
MIN_BUCKET_SECONDS = 5

CANARY_COLOUR = "#d63384"
STABLE_COLOUR = "#0d6efd"
SLO_COLOUR = "#dc3545"
MARKER_COLOUR = "#6c757d"


@dataclass(frozen=True)
class Bucket:
    """One version's traffic in [start, start + step) (p99 None: no request in it). Serving's
    `selectors.timeseries` buckets have these fields and are drawn as they are."""

    start: datetime
    requests: int
    errors: int
    p99_ms: float | None


def _error_rate_percent(bucket: Bucket) -> float | None:
    return 100.0 * bucket.errors / bucket.requests if bucket.requests else None


@dataclass(frozen=True)
class Marker:
    """A moment of the rollout drawn as a vertical line: a step's weight set, a pause, the outcome."""

    at: datetime
    label: str


def bucket_seconds(duration_seconds: float) -> int:
    """The bucket width for a rollout that has lasted `duration_seconds`: at most MAX_BUCKETS buckets."""
    return max(MIN_BUCKET_SECONDS, math.ceil(max(duration_seconds, 0) / MAX_BUCKETS))


def _iso(at: datetime) -> str:
    return at.isoformat()


def _number(value: float | None) -> float | None:
    # None (no traffic) leaves a gap in the line rather than a false zero.
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def _version_traces(fig, buckets: Sequence[Bucket], *, name: str, colour: str, dash: str) -> None:
    x = [_iso(bucket.start) for bucket in buckets]
    hover = [f"{bucket.errors} errors / {bucket.requests} requests" for bucket in buckets]
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[_number(_error_rate_percent(bucket)) for bucket in buckets],
            name=f"{name} error rate",
            legendgroup=name,
            mode="lines+markers",
            line={"color": colour, "dash": dash},
            text=hover,
            hovertemplate="%{y:.3f} % (%{text})<extra>" + name + "</extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[_number(bucket.p99_ms) for bucket in buckets],
            name=f"{name} p99",
            legendgroup=name,
            mode="lines+markers",
            line={"color": colour, "dash": dash},
            hovertemplate="%{y:.1f} ms<extra>" + name + "</extra>",
        ),
        row=2,
        col=1,
    )


def rollout_figure(
    *,
    canary: Sequence[Bucket],
    stable: Sequence[Bucket],
    canary_name: str,
    stable_name: str,
    markers: Sequence[Marker] = (),
    error_rate_slo: float = ERROR_RATE_SLO,
    p99_slo_ms: float = P99_SLO_MS,
) -> dict:
    """The figure as Plotly JSON (data and layout): error rate (%) above, p99 (ms) below, one line per
    version, a dashed SLO line on each, a dotted vertical line with its label at each marker."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
    )
    _version_traces(fig, stable, name=stable_name, colour=STABLE_COLOUR, dash="solid")
    _version_traces(fig, canary, name=canary_name, colour=CANARY_COLOUR, dash="dash")
    slo = {"line_color": SLO_COLOUR, "line_dash": "dash", "line_width": 1, "annotation_position": "top left"}
    fig.add_hline(
        y=100.0 * error_rate_slo, row=1, col=1, annotation_text=f"SLO {100 * error_rate_slo:g} %", **slo
    )
    fig.add_hline(y=p99_slo_ms, row=2, col=1, annotation_text=f"SLO {p99_slo_ms:g} ms", **slo)
    for marker in markers:
        # Drawn by hand rather than with add_vline, whose annotations cannot take a date on the x axis.
        at = _iso(marker.at)
        fig.add_shape(
            type="line", xref="x", yref="paper", x0=at, x1=at, y0=0, y1=1,
            line={"color": MARKER_COLOUR, "dash": "dot", "width": 1},
        )  # fmt: skip
        fig.add_annotation(
            x=at, xref="x", y=1.0, yref="paper", yanchor="bottom", text=marker.label,
            showarrow=False, font={"size": 11, "color": MARKER_COLOUR},
        )  # fmt: skip
    fig.update_yaxes(rangemode="tozero")
    fig.update_yaxes(title_text="error rate (%)", row=1, col=1)
    fig.update_yaxes(title_text="p99 (ms)", row=2, col=1)
    fig.update_layout(
        template="none",
        height=420,
        margin={"t": 40, "r": 20, "b": 40, "l": 60},
        legend={"orientation": "h", "y": -0.12},
        hovermode="x unified",
    )
    return fig.to_plotly_json()
