"""The drift report's Plotly figures, built on the server as plain JSON (the page and the export draw them).

One figure per feature (reference vs current shares over the reference bins), the PSI heatmap (features x
the model's recent runs), the score distribution, and the embedding's components and centroid distance.
"""

import json

import plotly.graph_objects as go

REFERENCE_COLOUR = "#6c757d"
CURRENT_COLOUR = "#0d6efd"
LAYOUT = {
    "template": "none",
    "height": 300,
    "margin": {"l": 50, "r": 20, "t": 40, "b": 80},
    "legend": {"orientation": "h", "y": 1.12},
    "barmode": "group",
}


def _figure(fig: go.Figure) -> dict:
    return json.loads(fig.to_json())


def _shares_figure(title: str, labels, reference, current) -> dict:
    fig = go.Figure(
        data=[
            go.Bar(name="reference (training)", x=labels, y=reference, marker_color=REFERENCE_COLOUR),
            go.Bar(name="current window", x=labels, y=current, marker_color=CURRENT_COLOUR),
        ],
        layout={
            **LAYOUT,
            "title": {"text": title},
            "yaxis": {"title": {"text": "share"}, "tickformat": ".0%"},
        },
    )
    return _figure(fig)


def feature_figure(result) -> dict:
    detail = result.detail or {}
    return _shares_figure(
        f"{result.feature}: PSI {result.psi:.3f}" if result.psi is not None else result.feature,
        detail.get("labels", []),
        detail.get("reference_shares", []),
        detail.get("current_shares", []),
    )


def heatmap_figure(runs, history: dict[int, dict[str, float | None]], features: list[str]) -> dict:
    """PSI of each feature (rows) in each run (columns, oldest first): the drift's history at a glance."""
    columns = [f"#{run.pk} {run.window_end:%m-%d %H:%M}" for run in runs]
    z = [[history[run.pk].get(name) for run in runs] for name in features]
    fig = go.Figure(
        data=[
            go.Heatmap(
                z=z,
                x=columns,
                y=features,
                zmin=0,
                zmax=0.5,
                colorscale=[[0, "#e9f5ec"], [0.2, "#fff3cd"], [0.4, "#f8d7da"], [1, "#b02a37"]],
                colorbar={"title": {"text": "PSI"}},
                hovertemplate="%{y}<br>run %{x}<br>PSI %{z:.3f}<extra></extra>",
            )
        ],
        layout={**LAYOUT, "height": 160 + 26 * max(len(features), 4), "title": {"text": "PSI by run"},
                "margin": {"l": 170, "r": 20, "t": 40, "b": 90}},
    )  # fmt: skip
    return _figure(fig)


def score_figure(score: dict) -> dict:
    title = "Score distribution"
    if score.get("psi") is not None:
        title += f": PSI {score['psi']:.3f}"
    return _shares_figure(
        title, score.get("labels", []), score.get("reference_shares", []), score.get("current_shares", [])
    )


def embedding_figures(result) -> list[dict]:
    """The PSI of each principal-component projection and of the centroid distance, then their shares."""
    parts = (result.detail or {}).get("parts", [])
    explained = (result.detail or {}).get("explained_variance_ratio", [])
    names = [
        f"{part['name']} ({explained[i]:.0%} var.)" if i < len(explained) else part["name"]
        for i, part in enumerate(parts)
    ]
    overview = go.Figure(
        data=[
            go.Bar(x=names, y=[part["psi"] for part in parts], name="PSI", marker_color=CURRENT_COLOUR),
            go.Bar(x=names, y=[part["js"] for part in parts], name="JS", marker_color=REFERENCE_COLOUR),
        ],
        layout={**LAYOUT, "title": {"text": "Merchant embedding: PSI / JS per projection"}},
    )
    figures = [_figure(overview)]
    for part in parts:
        figures.append(
            _shares_figure(
                f"embedding {part['name']}", part["labels"], part["reference_shares"], part["current_shares"]
            )
        )
    return figures


def report_charts(run, results, runs, history) -> dict[str, dict]:
    """Every figure of a report, by element id."""
    charts = {"chart-heatmap": heatmap_figure(runs, history, [result.feature for result in results])}
    score = (run.summary or {}).get("score")
    if score:
        charts["chart-score"] = score_figure(score)
    for result in results:
        if result.kind == "embedding":
            for index, figure in enumerate(embedding_figures(result)):
                charts[f"chart-embedding-{index}"] = figure
        else:
            charts[f"chart-feature-{result.pk}"] = feature_figure(result)
    return charts
