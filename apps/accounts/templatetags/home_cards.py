"""`{% home_card card %}`: render one of the home page's cards (apps/accounts/home.py) in the page's context.

The card's template sees the page's context (user, request, csrf_token) with the card's own context on
top, without running the context processors again (they cost queries).
"""

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def home_card(context, card):
    card_template = context.template.engine.get_template(card["template"])
    with context.push(**card["context"]):
        return card_template.render(context)
