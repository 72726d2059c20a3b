"""Turning a posted HTML form into checked data, and errors into what the page shows.

Why a small kit rather than a form library: the NHS design system wants a specific error pattern
(one summary at the top linking to each field, the message again next to the field, the person's
input kept), marshmallow already does the checking, and everything else is a few lines.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from marshmallow import Schema, ValidationError, fields, validate

#: The longest free text we accept in one box. Generous (a young person's own words are never
#: cut), but it stops a pasted novel or a hostile 50 MB post from reaching the store.
MAX_TEXT = 4000


class Text(fields.String):
    """Free text kept exactly as typed, but blank (only spaces) counts as missing.

    ``blank`` is the message shown when the person must write something here.
    """

    def __init__(self, *, blank: str = "Enter some text", max_length: int = MAX_TEXT, **kwargs):
        kwargs.setdefault("validate", validate.Length(max=max_length, error=f"Use {max_length} characters or fewer"))
        super().__init__(**kwargs)
        self.blank = blank
        self.error_messages["required"] = blank

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text.strip():
            if self.required:
                raise ValidationError(self.blank)
            return None
        return text.replace("\r\n", "\n")

    def _validate(self, value):
        if value is not None:  # blank optional text became None: nothing to check
            super()._validate(value)


class Choice(fields.String):
    """One code from a fixed list, with one message for missing and wrong alike.

    A blank answer (a select left on "Choose", which browsers post as ``""``) is missing: an error
    when the field is required, None when it is optional.
    """

    def __init__(self, choices, *, message: str, **kwargs):
        super().__init__(validate=validate.OneOf(list(choices), error=message), **kwargs)
        self.error_messages["required"] = message
        self.error_messages["invalid"] = message

    def _deserialize(self, value, attr, data, **kwargs):
        if value == "":
            if self.required:
                raise ValidationError(self.error_messages["required"])
            return None
        return super()._deserialize(value, attr, data, **kwargs)

    def _validate(self, value):
        if value is not None:  # blank optional choice became None: nothing to check against the list
            super()._validate(value)


class Token(fields.String):
    """The form's idempotency token: a UUIDv4 minted when the form was drawn."""

    def __init__(self, **kwargs):
        super().__init__(required=True, **kwargs)
        msg = "This form has expired. Reload the page and enter your changes again."
        self.error_messages["required"] = msg
        self.error_messages["invalid"] = msg

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parsed = uuid.UUID(text)
        except ValueError:
            raise ValidationError(self.error_messages["invalid"]) from None
        if parsed.version != 4 or str(parsed) != text:
            raise ValidationError(self.error_messages["invalid"])
        return text


class Version(fields.Integer):
    """The local version the form was drawn from (hidden field), for the conflict check."""

    def __init__(self, **kwargs):
        kwargs.setdefault("load_default", 0)
        super().__init__(strict=False, validate=validate.Range(min=0, max=10**9), **kwargs)
        self.error_messages["invalid"] = "This form has expired. Reload the page and enter your changes again."

    def _deserialize(self, value, attr, data, **kwargs):
        if value in ("", None):
            return 0
        return super()._deserialize(value, attr, data, **kwargs)


def new_token() -> str:
    return str(uuid.uuid4())


@dataclass
class FormErrors:
    """Errors in page order: ``items`` is [(field id, message)], ``by_field`` for the inline messages."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, field_id: str, message: str) -> None:
        if field_id not in self.by_field:
            self.items.append((field_id, message))

    @property
    def by_field(self) -> dict[str, str]:
        return dict(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def get(self, field_id: str) -> str | None:
        return self.by_field.get(field_id)


def form_dict(form, schema: Schema) -> dict:
    """The posted form as a plain dict: list fields get every value, others the first.

    Keys the schema does not know are kept (the schema excludes them) so dynamic fields such as
    ``score-<goal>`` survive for views that read them directly.
    """
    out: dict = {}
    for key in form.keys():
        f = schema.fields.get(key)
        if isinstance(f, fields.List):
            out[key] = form.getlist(key)
        else:
            out[key] = form.get(key)
    for name, f in schema.fields.items():
        if isinstance(f, fields.List) and name not in out:
            out[name] = []
    return out


def load(schema: Schema, form, order: list[str] | None = None) -> tuple[dict | None, FormErrors, dict]:
    """Check a posted form. Returns (data or None, errors, raw values to redraw the form with)."""
    raw = form_dict(form, schema)
    errors = FormErrors()
    try:
        data = schema.load(raw, unknown="exclude")
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        flat = _flatten(messages)
        names = order or list(schema.fields)
        for name in names + [k for k in flat if k not in names]:
            if name in flat:
                errors.add(name, flat[name])
        return None, errors, raw
    return data, errors, raw


def _flatten(messages: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in messages.items():
        name = f"{prefix}{key}" if not prefix else f"{prefix}-{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name))
        elif isinstance(value, list) and value:
            first = value[0]
            out[name] = first if isinstance(first, str) else str(first)
        else:
            out[name] = str(value)
    return out
