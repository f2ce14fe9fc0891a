"""Report.html() (hpo/evaluation/report.py): one standalone page per figure."""

from __future__ import annotations

import re

from hpo.evaluation import choose_threshold, classification_report, regression_report


def test_each_page_is_a_standalone_plotly_page(binary, regression) -> None:
    y, p = binary
    for report in (
        classification_report(y, p, threshold=choose_threshold(y, p, 1.0, 5.0)),
        regression_report(*regression),
    ):
        pages = report.html()
        assert set(pages) == {f"{name}.html" for name in report.figures}
        for name, page in pages.items():
            assert "<html>" in page[:100] and page.rstrip().endswith("</html>"), name
            assert 'class="plotly-graph-div"' in page and "Plotly.newPlot" in page, name
            assert not re.search(r"<script[^>]* src=", page)  # plotly.js inlined: works offline


def test_one_page_holds_every_figure_with_plotly_js_once(binary) -> None:
    report = classification_report(*binary)
    page = report.page("The winner, trial 3")
    assert page.startswith("<!DOCTYPE html>") and "The winner, trial 3" in page
    assert page.count('<div id="') >= len(report.figures)
    assert page.count("plotly.js v") == 1, "the library inlined once"
