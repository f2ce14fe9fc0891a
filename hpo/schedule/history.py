"""The nightly report: one standalone HTML page (plotly) of how the study moved night by night.

Best value per night, the champion's value on the same night's folds, the
nights that promoted a new champion, the nights that failed (and why), and
the nights whose data changed.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go

from hpo.schedule.ledger import Night

FAILED = ("FAILED", "KILLED")


def failed(night: Night, tonight: str) -> bool:
    """FAILED or KILLED, or left RUNNING on an earlier night (its process died)."""
    return night.status in FAILED or (night.status == "RUNNING" and night.date != tonight)


def render(nights: Sequence[Night], study: str, metric: str, tonight: str) -> str:
    """The page for the nights recorded so far, as of night ``tonight``."""
    figure = _figure(nights, metric, tonight)
    notes = _notes(nights, tonight)
    body = [
        f"<h1>Nightly study {html.escape(study)}</h1>",
        f"<p>As of night {tonight}; metric {html.escape(metric)}.</p>",
        "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>",
        figure.to_html(include_plotlyjs=True, full_html=False),
        _table(nights, tonight),
    ]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(study)}: nightly report</title></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )


def _notes(nights: Sequence[Night], tonight: str) -> list[str]:
    notes = []
    bad = [n for n in nights if failed(n, tonight)]
    if bad:
        notes.append(
            "Failed nights: " + "; ".join(f"{n.date} ({n.error or 'did not finish'})" for n in bad)
        )
    else:
        notes.append("Failed nights: none")
    notes += [f"{n.date}: {n.note}" for n in nights if n.note]
    promoted = [n for n in nights if n.decision in ("first", "promoted")]
    if promoted:
        notes.append(
            "Champion from night "
            + promoted[-1].date
            + f"; promotions: {', '.join(n.date for n in promoted)}"
        )
    return notes


def _figure(nights: Sequence[Night], metric: str, tonight: str) -> go.Figure:
    scored = [n for n in nights if n.best_value is not None]
    figure = go.Figure()
    figure.add_scatter(
        x=[n.date for n in scored],
        y=[n.best_value for n in scored],
        mode="lines+markers",
        name="best of the night",
    )
    compared = [n for n in scored if n.champion_value is not None]
    figure.add_scatter(
        x=[n.date for n in compared],
        y=[n.champion_value for n in compared],
        mode="markers",
        marker={"symbol": "diamond-open", "size": 10},
        name="champion, same night's folds",
    )
    promoted = [n for n in scored if n.decision in ("first", "promoted")]
    figure.add_scatter(
        x=[n.date for n in promoted],
        y=[n.best_value for n in promoted],
        mode="markers",
        marker={"symbol": "star", "size": 16, "color": "gold", "line": {"width": 1}},
        name="promoted to champion",
    )
    bad = [n for n in nights if failed(n, tonight)]
    floor = min((n.best_value for n in scored), default=0.0)  # type: ignore[type-var]
    figure.add_scatter(
        x=[n.date for n in bad],
        y=[floor] * len(bad),
        mode="markers",
        marker={"symbol": "x", "size": 14, "color": "red"},
        hovertext=[n.error or "did not finish" for n in bad],
        name="failed night",
    )
    for night in nights:
        if night.note:  # the data changed: a dashed line (add_vline's annotation breaks on dates)
            figure.add_shape(
                type="line",
                x0=night.date,
                x1=night.date,
                y0=0,
                y1=1,
                yref="paper",
                line={"color": "grey", "dash": "dash"},
            )
            figure.add_annotation(
                x=night.date, y=1, yref="paper", text="data changed", showarrow=False
            )
    figure.update_layout(
        title="Best value per night",
        xaxis={"title": "night (UTC)", "type": "date"},
        yaxis={"title": metric},
    )
    return figure


def _table(nights: Sequence[Night], tonight: str) -> str:
    head = ["night", "status", "best", "champion", "decision", "data", "study", "error"]
    rows = []
    for n in reversed(nights):
        status = "FAILED" if failed(n, tonight) and n.status == "RUNNING" else n.status
        cells = [
            n.date,
            status,
            _fmt(n.best_value),
            _fmt(n.champion_value),
            n.decision or "",
            (n.fingerprint or "") + (" (changed)" if n.note else ""),
            n.study,
            n.error or "",
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    header = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
    return f"<table border='1' cellpadding='4'>{header}{''.join(rows)}</table>"


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
