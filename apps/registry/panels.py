"""Panels other apps add to the registry's pages, so the registry knows none of them (it sits below).

An app registers a panel in its AppConfig.ready: a slot of a page, a template, and optionally a function
`(user, obj) -> dict | None` giving the template's extra context (None: nothing to show to this user).
The page renders a slot with `{% load registry_panels %}{% panels "version-actions" version %}`.
"""

from collections.abc import Callable
from dataclasses import dataclass

# The slots the registry's pages render.
SLOTS = ("model-actions", "version-actions", "version-sections")


@dataclass(frozen=True)
class Panel:
    slot: str
    template: str
    context: Callable | None = None


_PANELS: list[Panel] = []


def panel_register(*, slot: str, template: str, context: Callable | None = None) -> None:
    """Add a panel to a slot (once: registering the same template again is a no-op)."""
    if slot not in SLOTS:
        raise ValueError(f"unknown panel slot {slot!r}; the registry's pages render {', '.join(SLOTS)}")
    panel = Panel(slot, template, context)
    if panel not in _PANELS:
        _PANELS.append(panel)


def panels_in(slot: str) -> list[Panel]:
    return [panel for panel in _PANELS if panel.slot == slot]
