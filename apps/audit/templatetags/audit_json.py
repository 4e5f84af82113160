"""`pretty_json`: an event's before/after as indented JSON, for reading on the audit page."""

import json

from django import template

register = template.Library()


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
