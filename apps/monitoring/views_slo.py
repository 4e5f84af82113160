"""The SLO dashboard of a production model: budgets, burn rates, availability and latency against targets."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from apps.registry.permissions import model_for_user

from . import slo, slo_charts
from .selectors_slo import slo_dashboard


@login_required
def dashboard(request, name: str):
    model = model_for_user(request.user, name)  # 404 for a model the user may not see
    now = timezone.now()
    data = slo_dashboard(request.user, model, now=now)
    objectives = data["objectives"].objectives
    context = {"model": model, "now": now, **data}
    if data["has_traffic"]:
        rates = slo_charts.burn_rates(data["buckets"], objectives)
        context["burn_rates"] = rates
        context["charts"] = {
            "availability": slo_charts.availability_figure(data["buckets"], objectives),
            "latency": slo_charts.latency_figure(data["latency_series"], objectives),
            "burndown": slo_charts.burndown_figure(data["buckets"], objectives),
            "burn": slo_charts.burn_rate_figure(rates),
        }
        report = data["report"]
        context["rules"] = [("Availability", result) for result in report.availability_alerts] + [
            ("Latency", result) for result in report.latency_alerts
        ]
    context["error_allowance"] = 1 - objectives.availability
    context["quantile_label"] = f"p{objectives.latency_quantile * 100:g}"
    context["states"] = {"firing": slo.FIRING, "ok": slo.OK, "low": slo.LOW_TRAFFIC}
    return render(request, "monitoring/slo_dashboard.html", context)
