"""Reads of serving for the portal's pages: which version answers, breaker states, the last hour."""

from datetime import timedelta

import numpy as np
from django.utils import timezone

from apps.registry.models import RegisteredModel

from . import hotpath, router
from .config import SERVABLE_STAGES
from .models import BreakerTransition, FallbackRule, PredictionLog, ServingPolicy

WINDOW = timedelta(hours=1)


def open_breakers(limit: int = 500) -> list[BreakerTransition]:
    """The latest transition of each (model, version) whose breaker is open, as the writer recorded them."""
    latest: dict[tuple[int, int], BreakerTransition] = {}
    for transition in BreakerTransition.objects.select_related("model").order_by("-at", "-id")[:limit]:
        latest.setdefault((transition.model_id, transition.version), transition)
    return [t for t in latest.values() if t.to_state == "open"]


def _breaker_states(model: RegisteredModel, versions: list[int]) -> dict[int, str]:
    from .breaker import Breaker, breaker_key

    states = {}
    for number in versions:
        try:
            states[number] = Breaker(hotpath.redis_client(), breaker_key(model.name, number)).state()
        except Exception:  # Redis down: the page says so rather than failing
            states[number] = "unknown"
    return states


def serving_summary(model: RegisteredModel) -> dict:
    servable = list(
        model.versions.filter(stage__in=SERVABLE_STAGES).order_by("-version").values_list("version", "stage")
    )
    production = next((number for number, stage in servable if stage == "production"), None)
    try:
        routes = router.parse_table(hotpath.redis_client().hgetall(hotpath.ROUTES_KEY.format(model.name)))
    except Exception:
        routes = {}
    since = timezone.now() - WINDOW
    rows = list(
        PredictionLog.objects.filter(model=model, created_at__gte=since).values_list(
            "created_at", "latency_ms", "fallback"
        )
    )
    minutes, rate, p99 = [], [], []
    fallback_share = None
    if rows:
        at = np.array([(row[0] - since).total_seconds() // 60 for row in rows], dtype=np.int64)
        latency = np.array([row[1] for row in rows], dtype=np.float64)
        fallback = np.array([row[2] for row in rows], dtype=bool)
        fallback_share = float(fallback.mean())
        for minute in np.unique(at):
            chosen = latency[at == minute]
            minutes.append((since + timedelta(minutes=int(minute))).isoformat())
            rate.append(round(len(chosen) / 60.0, 3))
            p99.append(round(float(np.percentile(chosen, 99)), 3))
    chart = {
        "data": [
            {"x": minutes, "y": rate, "name": "requests/s", "type": "scatter", "mode": "lines"},
            {"x": minutes, "y": p99, "name": "p99 latency (ms)", "type": "scatter", "mode": "lines",
             "yaxis": "y2"},
        ],
        "layout": {
            "margin": {"t": 20, "r": 50, "b": 40, "l": 50},
            "height": 260,
            "yaxis": {"title": {"text": "requests/s"}, "rangemode": "tozero"},
            "yaxis2": {"title": {"text": "p99 ms"}, "overlaying": "y", "side": "right",
                       "rangemode": "tozero"},
            "legend": {"orientation": "h"},
        },
    }  # fmt: skip
    return {
        "production": production,
        "routes": routes,
        "answering": routes or ({production: 1.0} if production is not None else {}),
        "breakers": _breaker_states(model, [number for number, _ in servable]),
        "requests_last_hour": len(rows),
        "fallback_share": fallback_share,
        "chart": chart,
        "policies": list(ServingPolicy.objects.filter(model=model).select_related("created_by")[:10]),
        "rules": list(FallbackRule.objects.filter(model=model)),
        "transitions": list(BreakerTransition.objects.filter(model=model)[:10]),
    }
