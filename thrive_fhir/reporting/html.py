"""``thrive report html``: one self-contained page (charts inlined as PNG data) plus the PNG files.

Three views a commissioner asks for: young people per grouping over time (current at each month
end), transitions between groupings (a from -> to matrix), and the goals outcome table with its
95% intervals. Charts are drawn from the same (suppressed, unless told otherwise) tables the CSV
reports give, so a masked number is never drawn either: masked cells are left out of the charts.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from .. import canonical
from .reports import prepare, run_report
from .suppression import MASK, Table, suppress

LABELS = {
    "thriving": "Thriving",
    "getting-advice": "Getting Advice",
    "getting-help": "Getting Help",
    "getting-more-help": "Getting More Help",
    "getting-risk-support": "Getting Risk Support",
}
COLOURS = {
    "thriving": "#3a7d44",
    "getting-advice": "#2f6fb0",
    "getting-help": "#e0a100",
    "getting-more-help": "#d2691e",
    "getting-risk-support": "#b22234",
}


def _num(v):
    return v if isinstance(v, (int, float)) and v != MASK else None


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def chart_groupings(table: Table):
    import matplotlib.pyplot as plt

    months = sorted({r["by"] for r in table.rows})
    fig, ax = plt.subplots(figsize=(9, 4))
    for g in canonical.GROUPINGS:
        ys = [
            next((_num(r["current"]) for r in table.rows if r["by"] == m and r["grouping"] == g), None) for m in months
        ]
        ax.plot(
            months, [y if y is not None else float("nan") for y in ys], marker=".", label=LABELS[g], color=COLOURS[g]
        )
    ax.set_title("Young people per grouping (current at each month end)")
    ax.set_ylabel("young people")
    step = max(1, len(months) // 12)
    ax.set_xticks(
        range(0, len(months), step), [months[i] for i in range(0, len(months), step)], rotation=45, ha="right"
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return fig


def chart_transitions(table: Table):
    import matplotlib.pyplot as plt

    gs = list(canonical.GROUPINGS)
    grid = [[0.0] * len(gs) for _ in gs]
    text = [[""] * len(gs) for _ in gs]
    for r in table.rows:
        if r["from_grouping"] in gs and r["to_grouping"] in gs:
            i, j = gs.index(r["from_grouping"]), gs.index(r["to_grouping"])
            v = _num(r["transitions"])
            grid[i][j] = v or 0.0
            text[i][j] = str(r["transitions"])
    fig, ax = plt.subplots(figsize=(7, 5.5))
    ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(gs)), [LABELS[g] for g in gs], rotation=30, ha="right")
    ax.set_yticks(range(len(gs)), [LABELS[g] for g in gs])
    ax.set_xlabel("to grouping")
    ax.set_ylabel("from grouping")
    for i in range(len(gs)):
        for j in range(len(gs)):
            if text[i][j]:
                ax.text(j, i, text[i][j], ha="center", va="center", fontsize=9)
    ax.set_title("Transitions between groupings (the diagonal: reviewed, kept)")
    return fig


def chart_outcomes(table: Table):
    import matplotlib.pyplot as plt

    rows = [r for r in table.rows if r["indicator"] != "total"]
    names = [r["indicator"].replace("_", " ") for r in rows]
    pct = [_num(r["percent"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, r in enumerate(rows):
        p, lo, hi = _num(r["percent"]), _num(r["ci_low"]), _num(r["ci_high"])
        if p is None:
            continue
        ax.barh(i, p, color=["#3a7d44", "#999999", "#b22234"][i % 3])
        if lo is not None and hi is not None:
            ax.errorbar(p, i, xerr=[[p - lo], [hi - p]], color="black", capsize=4)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of paired goals (95% Wilson interval)")
    ax.set_title("Goal Based Outcomes: first vs last score per goal")
    del pct
    return fig


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in t.columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>" for c in t.columns)
        + "</tr>"
        for r in t.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(engine, opts, out: Path, *, suppressed: bool = True, progress=None) -> list[Path]:
    """Write ``out`` (.html) and ``<stem>-<chart>.png`` beside it; return the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    from dataclasses import replace

    import matplotlib.pyplot as plt

    say = progress or (lambda _m: None)
    steps = [
        ("groupings over time", "groupings", replace(opts, by="month"), chart_groupings),
        ("transitions", "transitions", replace(opts, by=None), chart_transitions),
        ("outcomes", "outcomes", replace(opts, by=None), chart_outcomes),
    ]
    sections, pngs = [], []
    say("reading the resources (views of one type share one scan)")
    prepare(engine, [report for _t, report, _o, _d in steps])
    for n, (title, report, o, draw) in enumerate(steps, 1):
        say(f"[{n}/{len(steps)}] {title}: running views and report")
        table = run_report(engine, report, o)
        shown = suppress(table) if suppressed else table
        fig = draw(shown)
        data = _png(fig)
        plt.close(fig)
        png = out.with_name(f"{out.stem}-{report}.png")
        png.write_bytes(data)
        pngs.append(png)
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        detail = "" if report == "groupings" else _table_html(shown)
        sections.append(
            f"<section><h2>{html.escape(title.capitalize())}</h2><img alt='{html.escape(title)} chart' src='{uri}'>{detail}</section>"
        )
    period = f"{opts.start or 'start of data'} to {opts.end or 'end of data'}"
    note = (
        "Counts from 1 to 7 are shown as * (with further cells hidden where a total would reveal them)."
        if suppressed
        else "INTERNAL USE ONLY: small numbers are not suppressed."
    )
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>THRIVE groupings and outcomes</title>
<style>body{{font-family:Arial,sans-serif;max-width:960px;margin:2em auto;color:#212b32}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #aeb7bd;padding:4px 8px;text-align:right}}
th{{background:#f0f4f5}}img{{max-width:100%}}.note{{background:#fff9c4;padding:8px}}</style></head>
<body><h1>THRIVE groupings and outcomes</h1><p>Period: {html.escape(period)}.</p><p class="note">{html.escape(note)}</p>
{"".join(sections)}</body></html>"""
    out.write_text(page, encoding="utf-8")
    say(f"done: {out} and {len(pngs)} PNG files")
    return pngs
