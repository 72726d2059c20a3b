"""A small server-rendered SVG line chart of GBO ratings (0-10) for one goal.

Rendered on the server so it works without JavaScript; the SVG has a title and description and the
page also shows the same figures in a table, so no one depends on seeing the chart.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT = 320, 140
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 28, 12, 10, 24


@dataclass
class Chart:
    width: int
    height: int
    points: list[tuple[float, float, int, str]]  # x, y, value, date label
    polyline: str
    gridlines: list[tuple[float, int]]
    description: str


def progress_chart(goal) -> Chart | None:
    scores = goal.scores
    if not scores:
        return None
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    n = len(scores)
    points = []
    for i, s in enumerate(scores):
        x = PAD_LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)
        y = PAD_TOP + plot_h * (1 - max(0, min(10, s.value)) / 10)
        points.append((round(x, 1), round(y, 1), s.value, s.when_display))
    grid = [(round(PAD_TOP + plot_h * (1 - v / 10), 1), v) for v in (0, 5, 10)]
    if n == 1:
        desc = f"One rating so far: {scores[0].value} out of 10 on {scores[0].when_display}."
    else:
        desc = (
            f"{n} ratings from {scores[0].when_display} to {scores[-1].when_display}: "
            f"first {scores[0].value}, latest {scores[-1].value} out of 10."
        )
    return Chart(
        WIDTH,
        HEIGHT,
        points,
        " ".join(f"{x},{y}" for x, y, _v, _d in points),
        grid,
        desc,
    )
