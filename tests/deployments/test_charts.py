"""The rollout chart's figure from known buckets: the lines, the gaps, the SLO lines and the step markers."""

from datetime import UTC, datetime, timedelta

from apps.deployments.charts import Bucket, Marker, bucket_seconds, rollout_figure

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def _at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


STABLE = [Bucket(_at(0), 1000, 0, 40.0), Bucket(_at(10), 2000, 1, 42.5), Bucket(_at(20), 1000, 0, 41.0)]
CANARY = [Bucket(_at(0), 50, 0, 45.0), Bucket(_at(10), 0, 0, None), Bucket(_at(20), 40, 4, 180.0)]


def _figure(**extra):
    return rollout_figure(
        canary=CANARY,
        stable=STABLE,
        canary_name="v5 (canary)",
        stable_name="v4 (stable)",
        markers=[Marker(_at(0), "5 %"), Marker(_at(25), "rolled back")],
        **extra,
    )


def _trace(figure, name):
    (trace,) = [t for t in figure["data"] if t["name"] == name]
    return trace


def test_error_rate_is_a_percentage_per_bucket_with_a_gap_where_there_was_no_traffic():
    figure = _figure()
    assert _trace(figure, "v4 (stable) error rate")["y"] == [0.0, 0.05, 0.0]
    assert _trace(figure, "v5 (canary) error rate")["y"] == [0.0, None, 10.0]
    assert _trace(figure, "v5 (canary) error rate")["x"][2] == "2026-12-03T08:00:20+00:00"


def test_p99_lines_sit_on_the_lower_axis():
    figure = _figure()
    canary = _trace(figure, "v5 (canary) p99")
    assert canary["y"] == [45.0, None, 180.0]
    assert (canary["xaxis"], canary["yaxis"]) == ("x2", "y2")
    assert _trace(figure, "v4 (stable) error rate")["yaxis"] == "y"


def test_slo_lines_are_drawn_at_the_seed_slos_on_their_own_axes():
    figure = _figure()
    horizontal = [s for s in figure["layout"]["shapes"] if s["xref"].endswith("domain")]
    assert {(s["yref"], s["y0"]) for s in horizontal} == {("y", 0.1), ("y2", 100.0)}
    texts = {a["text"] for a in figure["layout"]["annotations"]}
    assert {"SLO 0.1 %", "SLO 100 ms"} <= texts


def test_slo_lines_follow_the_thresholds_given():
    figure = _figure(error_rate_slo=0.005, p99_slo_ms=250.0)
    horizontal = [s for s in figure["layout"]["shapes"] if s["xref"].endswith("domain")]
    assert {s["y0"] for s in horizontal} == {0.5, 250.0}


def test_each_marker_is_a_vertical_line_with_its_label():
    figure = _figure()
    vertical = [s for s in figure["layout"]["shapes"] if s["xref"] == "x"]
    assert [s["x0"] for s in vertical] == ["2026-12-03T08:00:00+00:00", "2026-12-03T08:00:25+00:00"]
    labels = [a["text"] for a in figure["layout"]["annotations"] if a.get("xref") == "x"]
    assert labels == ["5 %", "rolled back"]


def test_a_rollout_without_traffic_still_gets_axes_and_slo_lines():
    figure = rollout_figure(canary=[], stable=[], canary_name="v2", stable_name="v1")
    assert all(trace["y"] == [] for trace in figure["data"])
    assert len(figure["layout"]["shapes"]) == 2


def test_buckets_stay_few_on_a_long_rollout_and_short_on_a_short_one():
    assert bucket_seconds(60) == 5
    assert bucket_seconds(24 * 3600) == 720
    assert bucket_seconds(-1) == 5
