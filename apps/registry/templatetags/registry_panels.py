"""`{% panels "slot" obj %}`: render the panels other apps registered for a slot of a registry page."""

from django import template
from django.template.loader import render_to_string
from django.utils.html import format_html_join

from apps.registry.panels import panels_in

register = template.Library()


@register.simple_tag(takes_context=True)
def panels(context, slot: str, obj):
    user = context.get("user")
    rendered = []
    for panel in panels_in(slot):
        extra = panel.context(user, obj) if panel.context else {}
        if extra is None:
            continue
        rendered.append(
            render_to_string(panel.template, {**context.flatten(), **extra}, request=context.get("request"))
        )
    # Each panel is a rendered (escaped, safe) template: joined as they are.
    return format_html_join("", "{}", ((html,) for html in rendered))
