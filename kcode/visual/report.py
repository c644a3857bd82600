"""The HTML report of a fix run: target | render | diff per iteration, the score curve, regions, edits.

Self-contained apart from the PNGs saved beside it in .kcode/runs/<id>/ (relative links, so the folder
can be zipped or attached to a CI run). The score curve is inline SVG: no scripts, no network.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1f2933; background: #fafafa; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 32px; }
.row { display: grid; grid-template-columns: repeat(3, 1fr); gap: 12px; }
.row figure { margin: 0; } .row img { width: 100%; border: 1px solid #ccd; background: #fff; }
figcaption { color: #52606d; font-size: 12px; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; border-bottom: 1px solid #dde; }
.best { background: #e6f4ea; } pre { background: #f0f2f5; padding: 8px; overflow-x: auto; }
code { font-size: 12px; }
"""


def make_run_dir(workspace: Path, run_id: str) -> Path:
    """.kcode/runs/<id>/, with a `*` .gitignore in runs/ so reports never show up in `git status`."""
    runs = workspace / ".kcode" / "runs"
    run_dir = runs / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    ignore = runs / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# written by kcode: reports and checkpoints of visual runs\n*\n")
    return run_dir


@dataclass
class IterationRecord:
    iteration: int
    score: float
    metrics: dict[str, Any]
    render_path: Path
    edits: str = ""  # the diff of the model turn that followed this render


def score_curve_svg(
    scores: list[float], threshold: float, width: int = 480, height: int = 160
) -> str:
    pad = 28
    if not scores:
        return ""
    span = max(len(scores) - 1, 1)

    def point(i: int, value: float) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * i / span
        y = height - pad - (height - 2 * pad) * max(0.0, min(1.0, value))
        return round(x, 1), round(y, 1)

    line = " ".join(f"{x},{y}" for x, y in (point(i, s) for i, s in enumerate(scores)))
    _, ty = point(0, threshold)
    dots = "".join(
        f'<circle cx="{x}" cy="{y}" r="3" fill="#2563eb"><title>iteration {i}: {s:.3f}</title>'
        "</circle>"
        for i, s in enumerate(scores)
        for x, y in [point(i, s)]
    )
    labels = "".join(
        f'<text x="{point(i, 0)[0]}" y="{height - 8}" font-size="10" text-anchor="middle">{i}</text>'
        for i in range(len(scores))
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="score per iteration">'
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff" stroke="#dde"/>'
        f'<line x1="{pad}" y1="{ty}" x2="{width - pad}" y2="{ty}" stroke="#16a34a" '
        f'stroke-dasharray="4 3"><title>threshold {threshold:.2f}</title></line>'
        f'<text x="4" y="{pad}" font-size="10">1.0</text>'
        f'<text x="4" y="{height - pad}" font-size="10">0.0</text>'
        f'<polyline points="{line}" fill="none" stroke="#2563eb" stroke-width="2"/>'
        f"{dots}{labels}</svg>"
    )


def _regions_html(regions: list[dict[str, Any]]) -> str:
    if not regions:
        return "<p>No differing regions.</p>"
    rows = []
    for region in regions[:8]:
        elements = "<br>".join(
            f"<code>{html.escape(e['selector'])}</code> "
            + (f"— {html.escape(e['source'])}" if e.get("source") else "")
            for e in region.get("elements", [])
        )
        rows.append(
            f"<tr><td>{html.escape(str(region['box']))}</td><td>{region.get('area', '')}</td>"
            f"<td>{elements}</td></tr>"
        )
    return "<table><tr><th>box</th><th>area</th><th>elements</th></tr>" + "".join(rows) + "</table>"


def write_report(
    run_dir: Path,
    mode: str,
    records: list[IterationRecord],
    threshold: float,
    best_iteration: int,
) -> Path:
    target_label = "annotated screenshot" if mode == "annotation" else "target"
    summary_rows = "".join(
        f'<tr class="{"best" if r.iteration == best_iteration else ""}"><td>{r.iteration}</td>'
        f"<td>{r.score:.4f}</td><td>{r.metrics.get('mismatch', 0):.4f}</td>"
        f"<td>{r.metrics.get('structure', 0):.4f}</td><td>{len(r.metrics.get('regions', []))}</td>"
        f"</tr>"
        for r in records
    )
    sections = []
    for record in records:
        diff_name = Path(record.metrics.get("heatmap") or f"iter-{record.iteration}-diff.png").name
        blocked = record.metrics.get("blocked") or []
        errors = record.metrics.get("console_errors") or []
        sections.append(
            f'<section id="iteration-{record.iteration}"><h2>Iteration {record.iteration} — score '
            f"{record.score:.4f}{' (best, kept)' if record.iteration == best_iteration else ''}</h2>"
            '<div class="row">'
            f'<figure><img src="target.png" alt="{target_label}"><figcaption>{target_label}'
            "</figcaption></figure>"
            f'<figure><img src="{record.render_path.name}" alt="render"><figcaption>render'
            "</figcaption></figure>"
            f'<figure><img src="{html.escape(diff_name)}" alt="diff"><figcaption>diff</figcaption>'
            "</figure></div>"
            f"{_regions_html(record.metrics.get('regions', []))}"
            + (f"<p>Blocked: {html.escape(', '.join(blocked))}</p>" if blocked else "")
            + (f"<p>Console errors: {html.escape(' | '.join(errors))}</p>" if errors else "")
            + (
                f"<h3>Edits after this iteration</h3><pre><code>{html.escape(record.edits)}"
                "</code></pre>"
                if record.edits
                else ""
            )
            + "</section>"
        )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>kcode fix — {html.escape(run_dir.name)}</title><style>{STYLE}</style></head><body>"
        f"<h1>kcode fix — run {html.escape(run_dir.name)}</h1>"
        f"<p>Mode: {mode}. Threshold {threshold:.2f}. Best iteration: {best_iteration}.</p>"
        f"{score_curve_svg([r.score for r in records], threshold)}"
        "<table><tr><th>iteration</th><th>score</th><th>mismatch</th><th>structure</th>"
        f"<th>regions</th></tr>{summary_rows}</table>" + "".join(sections) + "</body></html>"
    )
    path = run_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
