"""Goals Based Outcomes: reading progress from ratings, and the progress chart.

The one home for a goal's chart: the Goals page and the Summary (clinician and agency views) both
draw it from here, so everyone sees the same band, the same figures and the same text alternative.

Why server-rendered SVG: the app must work without JavaScript inside an EHR iframe and on small
screens; an inline SVG scales with the page and prints. Every chart comes with a table of the same
figures, so people using screen readers, or who cannot tell shades apart, get the same facts.

The band drawn on the chart is the reliable change band: a change of fewer than 3 points from the
first rating is within what a goal score can move by chance (NHS England's CYP outcome metric uses
3 for GBO). Ratings above the band are a reliable improvement, below it a reliable deterioration.
"""

from __future__ import annotations

from datetime import date, datetime

from markupsafe import Markup, escape

from smart_app.records import Rating
from thrive_fhir.canonical import GBO_RELIABLE_CHANGE

#: Ask for an explicit discussion when this many ratings show no reliable improvement.
DEFAULT_REVIEW_AFTER = 3


def change(ratings: list[Rating]) -> int | None:
    """Latest minus first rating, or None with fewer than two ratings."""
    if len(ratings) < 2:
        return None
    return ratings[-1].score - ratings[0].score


def change_label(ratings: list[Rating]) -> str:
    """Plain words for the change so far (used in the table and next to the chart)."""
    delta = change(ratings)
    if delta is None:
        return "Only one rating so far" if ratings else "Not rated yet"
    if delta >= GBO_RELIABLE_CHANGE:
        return f"Reliable improvement ({delta:+d})"
    if delta <= -GBO_RELIABLE_CHANGE:
        return f"Reliable deterioration ({delta:+d})"
    return f"No reliable change yet ({delta:+d})"


#: Goal.achievementStatus (R4 goal-achievement codes) in the words pages use.
ACHIEVEMENT_WORDS = {
    "in-progress": "In progress",
    "improving": "Improving",
    "worsening": "Getting worse",
    "no-change": "No change",
    "no-progress": "No reliable change",
    "achieved": "Achieved",
    "sustaining": "Sustaining",
    "not-achieved": "Not achieved",
    "not-attainable": "Not attainable",
}


def achievement(ratings: list[Rating]) -> str:
    """Goal.achievementStatus from the score change so far, the same rule as :func:`change_label`:
    a rise of 3 or more is ``improving``, a fall of 3 or more ``worsening``, anything smaller
    ``no-progress`` (no reliable change); fewer than two ratings, ``in-progress``. Closing a goal as
    achieved or not achieved replaces this (``thrive_fhir.builders.goals``)."""
    delta = change(ratings)
    if delta is None:
        return "in-progress"
    if delta >= GBO_RELIABLE_CHANGE:
        return "improving"
    if delta <= -GBO_RELIABLE_CHANGE:
        return "worsening"
    return "no-progress"


def achievement_words(code: str | None) -> str:
    return ACHIEVEMENT_WORDS.get(code or "", (code or "").replace("-", " ").capitalize())


def ending_words(goal: dict) -> str:
    """How a closed goal ended, and why, in words ("Achieved: back at school full time")."""
    achievement = next((c.get("code") for c in (goal.get("achievementStatus") or {}).get("coding", [])), None)
    if goal.get("lifecycleStatus") == "cancelled":
        how = "Ended before it was achieved"
    elif achievement in ("achieved", "not-achieved"):
        how = ACHIEVEMENT_WORDS[achievement]
    else:
        how = (goal.get("lifecycleStatus") or "closed").replace("-", " ").capitalize()
    reason = (goal.get("statusReason") or "").strip()
    return f"{how}: {reason}" if reason else how


def needs_discussion(
    ratings: list[Rating], last_discussed: datetime | date | None, review_after: int = DEFAULT_REVIEW_AFTER
) -> bool:
    """True when the goal has ``review_after`` or more ratings without a reliable improvement and
    no discussion has been recorded since ``review_after`` ratings ago.

    After a discussion the prompt stays away until another ``review_after`` ratings have been made,
    so it asks again only if things still have not moved.
    """
    if len(ratings) < review_after:
        return False
    delta = change(ratings)
    if delta is not None and delta >= GBO_RELIABLE_CHANGE:
        return False
    if last_discussed is None:
        return True
    since = [r for r in ratings if _as_datetime(r.when) > _as_datetime(last_discussed)]
    return len(since) >= review_after


def _as_datetime(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo else value
    return datetime(value.year, value.month, value.day)


# --- the chart -------------------------------------------------------------------------------
# A narrow drawing (360 units wide) so the text stays readable when a phone scales the chart down:
# at 360 px the chart is drawn at about 0.9 of its size, so 15-unit labels are ~13 px tall (a 640-
# unit drawing made them ~6 px). app.css caps its width so it does not grow huge on a desktop.
_W, _H = 360, 230
_LEFT, _RIGHT, _TOP, _BOTTOM = 30, 12, 12, 40
_FONT = 15


def _y(score: float) -> float:
    return _TOP + (10 - score) * (_H - _TOP - _BOTTOM) / 10


def _x(i: int, n: int) -> float:
    if n <= 1:
        return _LEFT + (_W - _LEFT - _RIGHT) / 2
    return _LEFT + i * (_W - _LEFT - _RIGHT) / (n - 1)


def _short(value: date | datetime) -> str:
    return value.strftime("%-d %b")


def axis_labels(ratings: list[Rating]) -> list[str]:
    """The label under each rating: its day, and when two ratings share a day, the time as well,
    so they can be told apart ("2 Dec 9am", "2 Dec 4:30pm")."""
    from smart_app.wording import time_text

    days = [_short(r.when) for r in ratings]
    out = []
    for r, day in zip(ratings, days):
        if days.count(day) > 1 and isinstance(r.when, datetime):
            out.append(f"{day} {time_text(r.when)}")
        else:
            out.append(day)
    return out


def goal_chart(goal_id: str, slot: int | None, text: str, ratings: list[Rating]) -> Markup:
    """A goal's chart as every page draws it: ids from the goal's id, a title naming the goal.

    The page must also show the ratings as a table (the chart's description points to it).
    """
    name = f"goal {slot}" if slot else "goal"
    return chart_svg(ratings, chart_id=f"chart-{goal_id}", title=f"Progress on {name}: {text}")


def chart_svg(ratings: list[Rating], *, chart_id: str, title: str) -> Markup:
    """An accessible SVG line chart of one goal's ratings with the reliable change band.

    ``chart_id`` must be unique on the page (it names the title/description elements).
    """
    n = len(ratings)
    desc = change_label(ratings)
    # the id comes from the Goal's id, which the FHIR server chose: escaped like the text
    chart_id = escape(chart_id)
    parts = [
        f'<svg class="app-gbo-chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg" focusable="false">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}. The table below gives every rating.</desc>',
    ]
    if n:
        first = ratings[0].score
        top, bottom = min(10, first + GBO_RELIABLE_CHANGE), max(0, first - GBO_RELIABLE_CHANGE)
        # band of no reliable change: strictly less than 3 points either side of the first rating
        parts.append(
            f'<rect class="app-gbo-chart__band" x="{_LEFT}" y="{_y(top):.1f}" width="{_W - _LEFT - _RIGHT}" '
            f'height="{_y(bottom) - _y(top):.1f}" fill="#e8edee" />'
        )
    for s in range(0, 11, 2):
        y = _y(s)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d8dde0" stroke-width="1" />'
        )
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 5:.1f}" text-anchor="end" font-size="{_FONT}" fill="#212b32">{s}</text>'
        )
    if n:
        points = " ".join(f"{_x(i, n):.1f},{_y(r.score):.1f}" for i, r in enumerate(ratings))
        parts.append(f'<polyline points="{points}" fill="none" stroke="#005eb8" stroke-width="3" />')
        labels = axis_labels(ratings)
        # label first, last and, for short series, every point, so the axis never crowds
        crowded = n > 3
        for i, r in enumerate(ratings):
            x, y = _x(i, n), _y(r.score)
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="#005eb8" stroke="#ffffff" stroke-width="2" />')
            if not crowded or i in (0, n - 1):
                anchor = "start" if (i == 0 and n > 1) else "end" if (i == n - 1 and n > 1) else "middle"
                parts.append(
                    f'<text class="app-gbo-chart__date" x="{x:.1f}" y="{_H - _BOTTOM + 24}" text-anchor="{anchor}" '
                    f'font-size="{_FONT}" fill="#212b32">{escape(labels[i])}</text>'
                )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  every text and id above is escaped; the rest are numbers
