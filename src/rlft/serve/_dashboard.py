"""The dashboard: server-rendered HTML with inline SVG charts; no frontend build step.

The job page reloads only its chart fragment (a few lines of inline script), so a running job's
reward curves grow in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from rlft import JobEvent

__all__ = ["chart_svg", "job_page", "jobs_page", "login_page", "summary"]

_STYLE = """
body{font:14px system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse}
td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}
.alert{color:#a40}.err{color:#b00}svg{background:#fafafa;border:1px solid #ddd}
.train{stroke:#1f77b4;fill:#1f77b4}.valid{stroke:#ff7f0e;fill:#ff7f0e}polyline{fill:none}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"{body}</body></html>"
    )


def login_page(error: str | None = None) -> str:
    """The login form: a key, posted once, sets a session cookie."""
    note = f"<p class='err' id='login-error'>{escape(error)}</p>" if error else ""
    return _page(
        "rlft serve: log in",
        "<h1>rlft serve</h1>"
        f"{note}<form method='post' action='/login'>"
        "<label>API key <input type='password' name='key' id='key' autocomplete='off'></label> "
        "<button type='submit' id='login'>Log in</button></form>",
    )


def summary(events: Sequence[JobEvent]) -> dict[str, Any]:
    """Curves, the latest grader error rate and the guard alerts of a job's events."""
    train: list[tuple[float, float]] = []
    valid: list[tuple[float, float]] = []
    error_rate = None
    alerts: list[str] = []
    for index, event in enumerate(events):
        m = event.metrics
        if event.kind == "metrics" and m is not None:
            step = float(m.step if m.step is not None else index)
            if m.train_reward_mean is not None:
                train.append((step, m.train_reward_mean))
            if m.valid_reward_mean is not None:
                valid.append((step, m.valid_reward_mean))
            if m.grader_error_rate is not None:
                error_rate = m.grader_error_rate
        elif event.level in ("warning", "error"):
            alerts.append(event.message)
    return {"train": train, "valid": valid, "grader_error_rate": error_rate, "alerts": alerts}


def chart_svg(train: Sequence[tuple[float, float]], valid: Sequence[tuple[float, float]]) -> str:
    """Reward curves (train, validation) as an SVG; each point is a ``circle`` of its series."""
    width, height, pad = 640, 240, 30
    steps = [s for s, _ in [*train, *valid]] or [0.0, 1.0]
    values = [v for _, v in [*train, *valid]] or [0.0, 1.0]
    x0, x1 = min(steps), max(max(steps), min(steps) + 1)
    y0, y1 = min(0.0, min(values)), max(1.0, max(values))

    def at(step: float, value: float) -> tuple[float, float]:
        x = pad + (step - x0) / (x1 - x0) * (width - 2 * pad)
        y = height - pad - (value - y0) / (y1 - y0) * (height - 2 * pad)
        return round(x, 1), round(y, 1)

    parts = [
        f"<svg id='curve' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"data-train-points='{len(train)}' data-valid-points='{len(valid)}'>",
        f"<text x='{pad}' y='16'>reward: <tspan class='train'>train</tspan> "
        "<tspan class='valid'>validation</tspan></text>",
        f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' "
        "stroke='#999'/>",
    ]
    for name, series in (("train", train), ("valid", valid)):
        points = [at(s, v) for s, v in series]
        if points:
            path = " ".join(f"{x},{y}" for x, y in points)
            parts.append(f"<polyline class='{name}' points='{path}'/>")
        for (x, y), (step, value) in zip(points, series, strict=True):
            parts.append(
                f"<circle class='{name}' cx='{x}' cy='{y}' r='3'>"
                f"<title>step {step:g}: {value:.3f}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


def jobs_page(jobs: Sequence[dict[str, Any]], who: str) -> str:
    """Every job the key sees, across backends."""
    rows = []
    for job in jobs:
        rate = job.get("grader_error_rate")
        rows.append(
            "<tr>"
            f"<td><a href='/jobs/{escape(job['id'])}'>{escape(job['id'])}</a></td>"
            f"<td>{escape(job['backend'])}</td><td class='status'>{escape(job['status'])}</td>"
            f"<td>{escape(job['model'])}</td>"
            f"<td>{'' if rate is None else f'{rate:.1%}'}</td></tr>"
        )
    table = (
        "<table id='jobs'><tr><th>job</th><th>backend</th><th>status</th><th>model</th>"
        "<th>grader errors</th></tr>" + "".join(rows) + "</table>"
    )
    return _page(
        "rlft serve: jobs",
        f"<h1>Jobs</h1><p>signed in as {escape(who)} "
        "<form method='post' action='/logout' style='display:inline'><button>log out</button>"
        f"</form></p>{table}",
    )


def job_page(
    job: dict[str, Any],
    info: dict[str, Any],
    checkpoints: Sequence[dict[str, Any]],
    live: bool,
) -> str:
    """One job: live reward curves, checkpoints, guard alerts and the grader error rate."""
    rate = info["grader_error_rate"]
    alerts = "".join(f"<li class='alert'>{escape(a)}</li>" for a in info["alerts"]) or "<li>none"
    points = "".join(
        f"<tr><td>{c['step_number']}</td><td>{escape(c['fine_tuned_model_checkpoint'])}</td></tr>"
        for c in checkpoints
    )
    script = ""
    if live:
        # Re-fetch the server-rendered chart until the job ends: no framework, no build step.
        script = (
            "<script>const chart=document.getElementById('chart');"
            "async function tick(){const r=await fetch(chart.dataset.src,"
            "{credentials:'same-origin'});if(r.ok){chart.innerHTML=await r.text();"
            "document.getElementById('status').textContent=r.headers.get('x-job-status');"
            "if(r.headers.get('x-job-live')==='1'){setTimeout(tick,500);}}}"
            "setTimeout(tick,500);</script>"
        )
    job_id = escape(job["id"])
    return _page(
        f"rlft serve: {job['id']}",
        f"<p><a href='/'>all jobs</a></p><h1>{job_id}</h1>"
        f"<p>backend {escape(job['backend'])}, model {escape(job['model'])}, status "
        f"<b id='status'>{escape(job['status'])}</b></p>"
        f"<div id='chart' data-src='/dashboard/jobs/{job_id}/chart'>"
        f"{chart_svg(info['train'], info['valid'])}</div>"
        f"<p>grader error rate: <span id='grader-errors'>"
        f"{'n/a' if rate is None else f'{rate:.1%}'}</span></p>"
        f"<h2>Checkpoints</h2><table id='checkpoints'><tr><th>step</th><th>model</th></tr>"
        f"{points}</table><h2>Guard alerts</h2><ul id='alerts'>{alerts}</ul>{script}",
    )
