"""Journey 2: GBO goals, one-screen ratings, charts, not-progressing discussions, closing."""

from __future__ import annotations

import re

from smart_app import gbo
from smart_app.gbo import Rating

from .conftest import error_links, text_of, token


def _goals(journey):
    return sorted(journey.resources("Goal"), key=lambda g: g["target"][0]["measure"]["coding"][0]["code"])


def _scores(journey):
    return [o for o in journey.resources("Observation") if "valueInteger" in o]


def _add(journey, words, baseline=None):
    form = {"token": token(), "description": words}
    if baseline is not None:
        form["baseline"] = str(baseline)
    return journey.post("goals/add", form)


def test_goal_with_baseline_is_saved_as_valid_fhir(journey):
    resp = _add(journey, "To stay in school for the whole day", baseline=2)
    assert resp.status_code == 303
    [goal] = _goals(journey)
    assert goal["description"]["text"] == "To stay in school for the whole day"
    assert goal["target"][0]["measure"]["coding"][0]["code"] == "1638531000000102"
    [score] = _scores(journey)
    assert score["valueInteger"] == 2 and score["focus"] == [{"reference": f"Goal/{goal['id']}"}]
    journey.assert_all_valid()
    assert journey.outbox_count() == 1


def test_a_fourth_open_goal_is_refused_with_a_clear_message(journey):
    for words in ("Sleep through the night", "See my friends at weekends", "Talk to mum when I'm upset"):
        assert _add(journey, words).status_code == 303
    page = journey.get("goals/")
    assert "There are already 3 open goals" in text_of(page)
    resp = _add(journey, "A fourth goal")
    assert resp.status_code == 400
    assert "There are already 3 open goals. Close one before adding another" in text_of(resp)
    assert error_links(resp) == ["description"]
    assert len(_goals(journey)) == 3
    slots = sorted(g["target"][0]["measure"]["coding"][0]["code"] for g in _goals(journey))
    assert slots == ["1638531000000102", "1638541000000106", "1638551000000109"]


def test_all_goals_rated_on_one_screen_blank_means_not_rated(journey):
    _add(journey, "Sleep through the night")
    _add(journey, "See my friends at weekends")
    g1, g2 = _goals(journey)
    page = journey.get("goals/").get_data(as_text=True)
    form = page.split('id="rate-form"', 1)[1].split("</form>", 1)[0]
    assert form.count('type="radio"') == 22  # 0-10 for each goal, one form, one Save
    assert form.count('type="submit"') == 1
    resp = journey.post("goals/rate", {"token": token(), f"score-{g1['id']}": "4", f"score-{g2['id']}": ""})
    assert resp.status_code == 303
    [score] = _scores(journey)
    assert score["valueInteger"] == 4 and score["focus"][0]["reference"] == f"Goal/{g1['id']}"
    journey.assert_all_valid()


def test_bad_ratings_are_refused_next_to_the_goal(journey):
    _add(journey, "Sleep through the night")
    [g] = _goals(journey)
    for value, message in (
        ("11", "The score must be from 0 to 10"),
        ("-1", "Choose a whole number from 0 to 10"),
        ("seven", "Choose a whole number from 0 to 10"),
    ):
        resp = journey.post("goals/rate", {"token": token(), f"score-{g['id']}": value})
        assert resp.status_code == 400 and message in text_of(resp)
        assert error_links(resp) == [f"score-{g['id']}"]
    resp = journey.post("goals/rate", {"token": token(), f"score-{g['id']}": ""})
    assert resp.status_code == 400 and "Choose a score for at least one goal" in text_of(resp)
    assert _scores(journey) == []


def test_double_submitted_ratings_are_saved_once(journey):
    _add(journey, "Sleep through the night")
    [g] = _goals(journey)
    form = {"token": token(), f"score-{g['id']}": "5"}
    assert journey.post("goals/rate", form).status_code == 303
    again = journey.post("goals/rate", form)
    assert "saved=duplicate" in again.headers["Location"]
    assert len(_scores(journey)) == 1


def test_chart_has_the_reliable_change_band_and_a_table(journey):
    _add(journey, "Sleep through the night", baseline=2)
    [g] = _goals(journey)
    journey.post("goals/rate", {"token": token(), f"score-{g['id']}": "6"})
    page = journey.get("goals/").get_data(as_text=True)
    svg = page.split('<svg class="app-gbo-chart"', 1)[1].split("</svg>", 1)[0]
    assert 'role="img"' in svg and "app-gbo-chart__band" in svg and svg.count("<circle") == 2
    table = page.split(f'id="ratings-{g["id"]}"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r"<td class=\"nhsuk-table__cell\">(\d+)</td>", table) == ["2", "6"]
    assert "Reliable improvement (+4)" in text_of(journey.get("goals/"))


def test_not_progressing_goal_prompts_an_explicit_discussion(journey):
    _add(journey, "Sleep through the night", baseline=4)
    [g] = _goals(journey)
    for score in ("5", "4"):
        assert journey.post("goals/rate", {"token": token(), f"score-{g['id']}": score}).status_code == 303
    page = text_of(journey.get("goals/"))
    assert "This goal is not moving" in page and "After 3 ratings there is no reliable improvement" in page
    form = journey.get(f"goals/{g['id']}/discuss")
    assert form.status_code == 200
    version = journey.store.current_version("Goal", g["id"])  # ratings keep achievementStatus up to date
    resp = journey.post(f"goals/{g['id']}/discuss", {"token": token(), "version": str(version), "discussion": " "})
    assert resp.status_code == 400 and error_links(resp) == ["discussion"]
    resp = journey.post(
        f"goals/{g['id']}/discuss",
        {"token": token(), "version": str(version), "discussion": "Agreed to keep the goal and try a sleep diary"},
    )
    assert resp.status_code == 303
    [goal] = _goals(journey)
    assert journey.store.current_version("Goal", goal["id"]) == version + 1
    assert goal["achievementStatus"]["coding"][0]["code"] == "no-progress"
    assert "sleep diary" in goal["note"][0]["text"] and goal["note"][0]["time"]
    assert "This goal is not moving" not in text_of(journey.get("goals/"))
    journey.assert_all_valid()


def test_close_goal_with_reason_and_conflict_is_not_overwritten(journey):
    _add(journey, "Sleep through the night")
    [g] = _goals(journey)
    resp = journey.post(
        f"goals/{g['id']}/close", {"token": token(), "version": "1", "outcome": "achieved", "reason": ""}
    )
    assert resp.status_code == 400 and error_links(resp) == ["reason"]
    # someone else records a discussion first (version 2) ...
    assert (
        journey.post(
            f"goals/{g['id']}/discuss", {"token": token(), "version": "1", "discussion": "Still the right goal"}
        ).status_code
        == 303
    )
    # ... so closing from the version-1 page is a conflict: both shown, nothing overwritten
    resp = journey.post(
        f"goals/{g['id']}/close",
        {"token": token(), "version": "1", "outcome": "achieved", "reason": "Sleeping well for a month"},
    )
    assert resp.status_code == 409
    page = text_of(resp)
    assert (
        "Someone else changed this goal" in page
        and "Still the right goal" in page
        and "Sleeping well for a month" in page
    )
    assert _goals(journey)[0]["lifecycleStatus"] == "active"
    resp = journey.post(
        f"goals/{g['id']}/close",
        {"token": token(), "version": "2", "outcome": "achieved", "reason": "Sleeping well for a month"},
    )
    assert resp.status_code == 303
    [goal] = _goals(journey)
    assert goal["lifecycleStatus"] == "completed" and goal["achievementStatus"]["coding"][0]["code"] == "achieved"
    assert goal["statusReason"] == "Sleeping well for a month"
    assert "Still the right goal" in goal["note"][0]["text"]  # the earlier discussion is kept
    journey.assert_all_valid()
    # a closed goal frees a place but never its slot number
    for words in ("A", "B"):
        assert _add(journey, words).status_code == 303
    assert _add(journey, "C").status_code == 400


def test_unknown_goal_is_a_404_page_not_an_error(journey):
    assert journey.get("goals/no-such-goal/close").status_code == 404
    assert journey.post("goals/no-such-goal/close", {"token": token()}).status_code == 404


def test_progress_rules():
    def r(*scores):
        return [Rating(__import__("datetime").date(2025, 1, i + 1), s) for i, s in enumerate(scores)]

    assert gbo.change_label(r(2, 5)) == "Reliable improvement (+3)"
    assert gbo.change_label(r(5, 2)) == "Reliable deterioration (-3)"
    assert gbo.change_label(r(5, 7)) == "No reliable change yet (+2)"
    assert not gbo.needs_discussion(r(3, 4), None)
    assert gbo.needs_discussion(r(3, 4, 5), None)
    assert not gbo.needs_discussion(r(3, 4, 6), None)
    import datetime as dt

    assert not gbo.needs_discussion(r(3, 4, 5), dt.datetime(2025, 1, 3, 12))
    assert gbo.needs_discussion(r(3, 4, 5, 4, 5, 4), dt.datetime(2025, 1, 3, 12))


# --- issue 15: achievementStatus follows the score change; closed goals say so up front ----------
def _status(goal):
    return goal["achievementStatus"]["coding"][0]["code"]


def test_achievement_status_follows_the_score_change_and_the_label_follows_it(journey):
    _add(journey, "Sleep through the night", baseline=2)
    [g] = _goals(journey)
    assert _status(g) == "in-progress"
    journey.post("goals/rate", {"token": token(), f"score-{g['id']}": "6"})
    [g] = _goals(journey)
    assert _status(g) == "improving"
    assert "Progress: Improving" in text_of(journey.get("goals/"))
    # a discussion after the score rose is not saved as "not progressing"
    version = journey.store.current_version("Goal", g["id"])
    assert (
        journey.post(
            f"goals/{g['id']}/discuss",
            {"token": token(), "version": str(version), "discussion": "Going well; keep going"},
        ).status_code
        == 303
    )
    [g] = _goals(journey)
    assert _status(g) == "improving"
    assert "Not progressing" not in g["note"][0]["text"] and "Reliable improvement (+4)" in g["note"][0]["text"]
    journey.post("goals/rate", {"token": token(), f"score-{g['id']}": "1"})
    [g] = _goals(journey)
    assert _status(g) == "no-progress"  # 2 -> 1: no reliable change
    journey.post("goals/rate", {"token": token(), f"score-{g['id']}": "0"})
    journey.post("goals/rate", {"token": token(), f"score-{g['id']}": "9"})
    [g] = _goals(journey)
    assert _status(g) == "improving"
    version = journey.store.current_version("Goal", g["id"])
    assert (
        journey.post(
            f"goals/{g['id']}/close",
            {"token": token(), "version": str(version), "outcome": "achieved", "reason": "Sleeping well"},
        ).status_code
        == 303
    )
    [g] = _goals(journey)
    assert _status(g) == "achieved" and g["lifecycleStatus"] == "completed"
    page = text_of(journey.get("goals/"))
    assert "Closed Achieved: Sleeping well" in page and "Achieved :" not in page
    assert "Progress: Improving" not in page
    journey.assert_all_valid()


def test_worsening_scores_are_recorded_as_worsening(journey):
    _add(journey, "See friends at weekends", baseline=7)
    [g] = _goals(journey)
    journey.post("goals/rate", {"token": token(), f"score-{g['id']}": "3"})
    [g] = _goals(journey)
    assert _status(g) == "worsening"
    assert "Progress: Getting worse" in text_of(journey.get("goals/"))


def test_achievement_rule():
    from datetime import date

    def r(*scores):
        return [Rating(date(2026, 1, i + 1), s) for i, s in enumerate(scores)]

    assert gbo.achievement(r()) == gbo.achievement(r(5)) == "in-progress"
    assert gbo.achievement(r(2, 5)) == "improving" and gbo.achievement(r(2, 4)) == "no-progress"
    assert gbo.achievement(r(6, 3)) == "worsening" and gbo.achievement(r(6, 4, 7)) == "no-progress"


def test_no_add_goal_form_when_every_goal_number_is_used(journey):
    for words in ("A", "B", "C"):
        assert _add(journey, words).status_code == 303
    g = _goals(journey)[0]
    assert (
        journey.post(
            f"goals/{g['id']}/close", {"token": token(), "version": "1", "outcome": "achieved", "reason": "Done"}
        ).status_code
        == 303
    )
    page = journey.get("goals/")
    html = page.get_data(as_text=True)
    assert 'id="add-form"' not in html
    assert "All three goal numbers have been used" in text_of(page)
