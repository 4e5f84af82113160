"""Filters of the SLO pages: shares as percentages, burn rates, with a dash where there is no number."""

import math

from django import template

register = template.Library()

NOTHING = "—"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@register.filter
def percent(value, digits=2):
    """0.99953 -> "99.95%"; None or NaN (no traffic) -> "—"."""
    if _missing(value):
        return NOTHING
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def burn(value):
    """A burn rate: "14.4x"; None or NaN (no traffic in the window) -> "—"."""
    if _missing(value):
        return NOTHING
    return f"{float(value):.2f}x"


@register.filter
def number(value, digits=1):
    if _missing(value):
        return NOTHING
    return f"{float(value):.{int(digits)}f}"
