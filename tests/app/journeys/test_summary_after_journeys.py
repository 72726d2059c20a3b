"""Issue 15 items 6 and 7: the Summary after the journeys: closed goals and how each ended; everyone
who took part in the grouping decision, and the parent or carer's involvement."""

from __future__ import annotations

import re

from .conftest import grouping_form, text_of, token


def test_closed_goals_are_shown_with_how_each_ended_after_ending_help(journey):
    journey.post("grouping/agree", grouping_form())
    for words, baseline in (("Sleep through the night", "2"), ("See friends at weekends", "5"), ("Go to school", "3")):
        assert (
            journey.post("goals/add", {"token": token(), "description": words, "baseline": baseline}).status_code == 303
        )
    goals = {g["description"]["text"]: g for g in journey.resources("Goal")}
    form = {
        "token": token(),
        "limits": "What help can do; how to come back",
        "grouping": "thriving",
        "change_reason": "goals-achieved",
        "yp_involvement": "agreed",
        f"outcome-{goals['Sleep through the night']['id']}": "achieved",
        f"outcome-{goals['See friends at weekends']['id']}": "not-achieved",
        f"outcome-{goals['Go to school']['id']}": "ended",
    }
    assert journey.post("ending/", form).status_code == 303
    page = text_of(journey.get("summary"))
    assert "No goals have been set yet" not in page
    assert "Closed goals" in page and "There are no open goals" in page
    assert re.search(r"Goal \d: “Sleep through the night” Achieved: Closed at the planned ending of help", page)
    assert re.search(r"“See friends at weekends” Not achieved: Closed at the planned ending of help", page)
    assert re.search(r"“Go to school” Ended before it was achieved: Closed at the planned ending of help", page)


def test_everyone_who_took_part_and_the_parents_involvement_are_on_the_summary(journey):
    form = grouping_form(
        participants=["young-person", "parent-carer", "clinician", "school"], family_involvement="partly-agreed"
    )
    assert journey.post("grouping/agree", form).status_code == 303
    html = journey.get("summary").get_data(as_text=True)
    took_part = re.search(r'id="grouping-took-part">([^<]*)<', html).group(1)
    for who in ("TESTER, Sam", "Parent or carer", "School or college"):
        assert who in took_part, took_part
    assert re.search(r'id="grouping-family-involvement">Partly agreed<', html)
    # an agency named from the directory is shown by name, not as its kind as well
    [current] = [o for o in journey.resources("Observation") if "valueCodeableConcept" in o]
    form = grouping_form(
        participants=["young-person", "clinician", "school"],
        agencies=["northgate-academy"],
        family_involvement="not-applicable",
        previous_id=current["id"],
    )
    assert journey.post("grouping/agree", form).status_code == 303
    html = journey.get("summary").get_data(as_text=True)
    took_part = re.search(r'id="grouping-took-part">([^<]*)<', html).group(1)
    assert "Northgate Academy (invented school)" in took_part and "School or college" not in took_part
