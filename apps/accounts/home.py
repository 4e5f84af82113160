"""The home page's cards: what needs each person, contributed by the apps that know it.

Accounts sits at the bottom and knows none of the apps above it, so they register their cards here, in
their AppConfig.ready: a template, a function `(user) -> dict | None` giving its context (None: nothing
for this user, the card is not shown) and an order (smaller first). A card's context function scopes
its own reads to the user (the same selectors as the app's pages) and keeps to a fixed number of
queries, however much data there is: the home page is everyone's first page.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Card:
    template: str
    context: Callable[..., dict | None]
    order: int


_CARDS: dict[str, Card] = {}


def card_register(*, template: str, context: Callable[..., dict | None], order: int) -> None:
    """Add a card to the home page; the same template registered again replaces it (ready() may rerun)."""
    _CARDS[template] = Card(template=template, context=context, order=order)


def cards_for(user) -> list[dict]:
    """The cards `user` should see, in order: each `{"template", "context"}`."""
    shown = []
    for card in sorted(_CARDS.values(), key=lambda card: (card.order, card.template)):
        context = card.context(user)
        if context is not None:
            shown.append({"template": card.template, "context": context})
    return shown
