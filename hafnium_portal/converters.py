"""What a string segment of a URL may be: path converters, registered once, checked before any query.

A segment that does not fit is a 404 from the URL resolver: a NUL byte, a control character or a
name too long for its column never reaches a view, let alone the database (PostgreSQL refuses NUL in
text and would answer a 500).

`<modelname:name>` is a registered model's name. The same rule validates a new model's name (the
register API) and serves the DRF viewsets' `lookup_value_regex`, so that every name the portal accepts
has a page and every page address is a name the portal could accept.
"""

import re

from django.core.validators import RegexValidator
from django.urls import register_converter

MODEL_NAME_MAX_LENGTH = 200  # RegisteredModel.name's column
# A letter, digit or '_' first, then letters, digits, '.', '_' and '-' (`\w` is Unicode: "modèle" fits).
# No '/', no spaces, no control characters, no NUL. Without anchors: Django and DRF anchor it.
MODEL_NAME_REGEX = rf"\w[\w.-]{{0,{MODEL_NAME_MAX_LENGTH - 1}}}"
MODEL_NAME_MESSAGE = (
    f"Use letters, digits, '.', '_' and '-' only, at most {MODEL_NAME_MAX_LENGTH}, "
    "not starting with '.' or '-'."
)
_MODEL_NAME = re.compile(MODEL_NAME_REGEX)

validate_model_name = RegexValidator(rf"\A{MODEL_NAME_REGEX}\Z", MODEL_NAME_MESSAGE)


def is_model_name(value: object) -> bool:
    """Whether `value` is a name a registered model may have (for names from a form or a query string)."""
    return isinstance(value, str) and _MODEL_NAME.fullmatch(value) is not None


class ModelNameConverter:
    """`<modelname:name>`: a registered model's name, as the string it is."""

    regex = MODEL_NAME_REGEX

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ModelNameConverter, "modelname")
