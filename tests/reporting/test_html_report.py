"""``thrive report html``: a self-contained offline page plus the same charts as PNG files."""

from __future__ import annotations

import re

from click.testing import CliRunner

from thrive_fhir.cli import cli


def test_html_report_is_self_contained_with_pngs(tmp_path, population):
    folder, truth = population(160, 7)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "html", "--source", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "[1/3]" in result.output and "[3/3]" in result.output  # progress for long runs
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 3
    # Offline: nothing fetched from anywhere (no external scripts, styles, images or fonts).
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    for chart in ("groupings", "transitions", "outcomes"):
        png = tmp_path / f"report-{chart}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Counts from 1 to 7 are shown as *" in page
    improved = truth["gbo"]["paired"]["reliable_improvement"]
    assert f"<td>{improved}</td>" in page  # the outcome table is on the page (a count above 7)


def test_html_needs_an_html_file(tmp_path, population):
    folder, _ = population(40, 1)
    result = CliRunner().invoke(cli, ["report", "html", "--source", str(folder), "--out", str(tmp_path / "r.csv")])
    assert result.exit_code == 2 and ".html" in result.output
