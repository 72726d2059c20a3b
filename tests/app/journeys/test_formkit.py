"""The form kit's fields on their own: what a blank, a wrong and a right answer become."""

from __future__ import annotations

from marshmallow import Schema
from werkzeug.datastructures import MultiDict

from smart_app.journeys.formkit import Choice, load

MESSAGE = "Choose a colour"


class ColourForm(Schema):
    required_colour = Choice(("red", "blue"), required=True, message=MESSAGE)
    optional_colour = Choice(("red", "blue"), message=MESSAGE)


def _load(**posted):
    return load(ColourForm(), MultiDict(posted), ["required_colour", "optional_colour"])


def test_optional_choice_left_blank_is_no_answer_not_an_error():
    # a select left on "Choose" posts "": the browser's way of saying nothing was chosen
    data, errors, _raw = _load(required_colour="red", optional_colour="")
    assert not errors and data == {"required_colour": "red", "optional_colour": None}
    data, errors, _raw = _load(required_colour="blue")
    assert not errors and data == {"required_colour": "blue"}


def test_optional_choice_still_refuses_an_answer_not_on_the_list():
    data, errors, raw = _load(required_colour="red", optional_colour="green")
    assert data is None and errors.items == [("optional_colour", MESSAGE)]
    assert raw["optional_colour"] == "green"  # kept, to redraw the form with


def test_required_choice_refuses_blank_missing_and_wrong_alike():
    for posted in ({"required_colour": ""}, {}, {"required_colour": "green"}):
        data, errors, _raw = _load(**posted)
        assert data is None and errors.items == [("required_colour", MESSAGE)], posted
