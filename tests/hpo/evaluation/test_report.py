"""Report.html() (hpo/evaluation/report.py): one standalone page per figure; page(): one
page of sections (the study's report.html)."""

from __future__ import annotations

import re

from hpo.evaluation import choose_threshold, classification_report, page, regression_report


def test_each_page_is_a_standalone_plotly_page(binary, regression) -> None:
    y, p = binary
    for report in (
        classification_report(y, p, threshold=choose_threshold(y, p, 1.0, 5.0)),
        regression_report(*regression),
    ):
        pages = report.html()
        assert set(pages) == {f"{name}.html" for name in report.figures}
        for name, one in pages.items():
            assert "<html>" in one[:100] and one.rstrip().endswith("</html>"), name
            assert 'class="plotly-graph-div"' in one and "Plotly.newPlot" in one, name
            assert not re.search(r"<script[^>]* src=", one)  # plotly.js inlined: works offline


def test_one_page_holds_every_section_with_plotly_js_once(binary, regression) -> None:
    """The study's report.html: plotly.js (4.6 MB) once for every figure, none fixed wider
    than the viewer, an empty section left out."""
    clf, reg = classification_report(*binary), regression_report(*regression)
    reg.figures["residuals_vs_predicted"].update_layout(width=1800)  # as a slice plot may
    sections = [clf.section("On its out-of-fold rows"), ("Nothing", []), reg.section("<Test>")]
    text = page("The winner, trial 3", sections)
    assert text.startswith("<!DOCTYPE html>") and "The winner, trial 3" in text
    assert "<h3>On its out-of-fold rows</h3>" in text and "&lt;Test&gt;" in text
    assert "Nothing" not in text
    assert text.count('class="plotly-graph-div"') == len(clf.figures) + len(reg.figures)
    assert text.count("plotly.js v") == 1, "the library inlined once"
    assert not re.search(r"<script[^>]* src=", text)  # works offline
    assert '"width":1800' not in text and "width:100%" in text.replace(" ", "")
