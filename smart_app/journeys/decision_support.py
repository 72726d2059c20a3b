"""Needs-led decision support for "Agree a grouping" (THRIVE: shared decision making).

For each grouping, in the CodeSystem's listing order (never ranked, never numbered), the page shows
what it would mean HERE: the locality's offers mapped to it in the services directory, and what the
young person and family would do. The prompts keep the conversation on needs, wishes and choice,
never on severity or a score, and the decision is the people's own: nothing here picks a grouping.

What was talked about is recorded with the grouping (the Observation's notes): which of the local
options were offered, and which the young person and family chose.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import vocab
from .common import directory

#: What the young person and family would do in each grouping (project wording, plain language).
WHAT_YOU_WOULD_DO = {
    "thriving": "Carry on with everyday life, school and friends, using the support everyone can get. "
    "No individual help is planned; come back at any time if things change.",
    "getting-advice": "Use advice, self-help, online or community support and the local offer, choosing what "
    "suits them, and know where to turn if they need more.",
    "getting-help": "Meet for a short, focused piece of help with goals agreed at the start, rating progress "
    "towards them as they go, and deciding together when to stop.",
    "getting-more-help": "Take part in longer or more specialist help, often with more than one service, with "
    "goals agreed at the start and progress reviewed together.",
    "getting-risk-support": "Work with the services around them on keeping safe, with a safety plan they help "
    "write and people they can turn to, even if treatment is not right or possible now.",
}

#: Questions that keep the talk about needs and choice (never severity, diagnosis or a score).
PROMPTS = (
    "What would the young person like to be different, and what matters most to them?",
    "What has helped before, and what has not?",
    "What would they and their family like to try now, and what would they rather not do?",
    "What do they need from school, family or other services to make this work?",
    "How will you all know it is helping, and when will you look at it again?",
)

#: A reminder shown with the prompts.
NOT_SEVERITY = (
    "The groupings describe the kind of help chosen, not how unwell someone is. Do not decide "
    "from a score or a diagnosis: talk about needs, wishes and what the young person chooses."
)


@dataclass(frozen=True)
class Option:
    code: str
    name: str
    agency: str
    description: str


@dataclass(frozen=True)
class GroupingChoice:
    code: str
    display: str
    definition: str | None
    what_you_would_do: str
    offers: tuple[Option, ...]


def choices() -> list[GroupingChoice]:
    """Every grouping with its local offers and what the family would do, in listing order."""
    d = directory()
    out = []
    for g in vocab.groupings():
        offers = tuple(Option(s.code, s.name, s.agency.name, s.description) for s in d.services if s.serves(g.code))
        out.append(GroupingChoice(g.code, g.display, g.definition, WHAT_YOU_WOULD_DO.get(g.code, ""), offers))
    return out


def option_codes() -> set[str]:
    return {s.code for s in directory().services}


def option_name(code: str) -> str:
    s = directory().service(code)
    return f"{s.name} ({s.agency.name})" if s else code


OFFERED = "Local options offered: "
CHOSEN = "Options the young person and family chose: "


def note_lines(offered: list[str], chosen: list[str]) -> list[str]:
    """The grouping note's record of the options offered and chosen (chosen ones count as offered)."""
    offered = list(dict.fromkeys([*offered, *chosen]))
    lines = []
    if offered:
        lines.append(OFFERED + "; ".join(option_name(c) for c in offered))
    if chosen:
        lines.append(CHOSEN + "; ".join(option_name(c) for c in chosen))
    return lines
