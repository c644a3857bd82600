"""Test pages the visual tests and the benchmark write themselves: a pricing page and CSS defects.

Each defect is a (name, css, html_edit, expected) entry: `css` is appended to styles.css, `html_edit`
rewrites index.html, and `expected` is a substring that one of the top-3 located selectors must
contain — the element a person would point at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STYLES = """\
* { box-sizing: border-box; }
body { margin: 0; font-family: "DejaVu Sans", sans-serif; background: #f4f5f7; color: #1f2933; }
.site-header {
  display: flex; align-items: center; justify-content: space-between;
  padding: 16px 40px; background: #1e293b; color: #f8fafc;
}
.logo { font-size: 22px; font-weight: bold; }
.nav a { color: #cbd5e1; margin-left: 24px; text-decoration: none; font-size: 15px; }
.hero { padding: 32px 40px 8px; }
.hero h1 { margin: 0 0 8px; font-size: 32px; }
.hero p { margin: 0; color: #52606d; font-size: 16px; }
.cards { display: flex; gap: 24px; padding: 24px 40px; align-items: flex-start; }
.card {
  flex: 0 0 300px; background: #ffffff; border-radius: 10px; padding: 20px;
  box-shadow: 0 1px 3px rgba(0, 0, 0, 0.15);
}
.card h3 { margin: 0 0 6px; font-size: 20px; }
.price { font-size: 30px; font-weight: bold; margin: 6px 0 12px; }
.badge {
  display: inline-block; background: #fde68a; color: #92400e; font-size: 12px;
  padding: 2px 8px; border-radius: 8px;
}
.features { margin: 0 0 16px; padding-left: 18px; color: #52606d; font-size: 14px; line-height: 1.6; }
.buy {
  display: block; width: 100%; padding: 10px; border: 0; border-radius: 6px;
  background: #2563eb; color: #ffffff; font-size: 15px;
}
.site-footer { padding: 16px 40px; color: #7b8794; font-size: 13px; }
"""

CARD = """\
    <div class="card" id="plan-{slug}">
      <h3>{title}</h3>
      <span class="badge">{badge}</span>
      <div class="price">{price}</div>
      <ul class="features">
        <li>{feature1}</li>
        <li>{feature2}</li>
        <li>{feature3}</li>
      </ul>
      <button class="buy">Choose {title}</button>
    </div>
"""

PLANS = [
    ("basic", "Basic", "Starter", "$9", "1 project", "Email support", "1 GB storage"),
    ("pro", "Pro", "Popular", "$29", "10 projects", "Chat support", "50 GB storage"),
    ("team", "Team", "Best value", "$79", "Unlimited projects", "Phone support", "1 TB storage"),
]


def page_html(extra_head: str = "", extra_body: str = "") -> str:
    cards = "".join(
        CARD.format(slug=s, title=t, badge=b, price=p, feature1=f1, feature2=f2, feature3=f3)
        for s, t, b, p, f1, f2, f3 in PLANS
    )
    return f"""\
<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Pricing</title>
  <link rel="stylesheet" href="styles.css">
{extra_head}</head>
<body>
  <header class="site-header">
    <div class="logo">Acme</div>
    <nav class="nav"><a href="#">Product</a><a href="#">Pricing</a><a href="#">Docs</a></nav>
  </header>
  <section class="hero">
    <h1>Simple pricing</h1>
    <p>Pick the plan that fits your team. Cancel any time.</p>
  </section>
  <main class="cards">
{cards}  </main>
  <footer class="site-footer">© Acme Inc.</footer>
{extra_body}</body>
</html>
"""


def write_page(root: Path, extra_css: str = "", html: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "styles.css").write_text(STYLES + extra_css, encoding="utf-8")
    (root / "index.html").write_text(html if html is not None else page_html(), encoding="utf-8")
    return root


def _drop_team_card(html: str) -> str:
    start = html.index('    <div class="card" id="plan-team">')
    end = html.index("</div>\n", html.index('class="buy"', start)) + len("</div>\n")
    return html[:start] + html[end:]


@dataclass(frozen=True)
class Defect:
    name: str
    css: str
    expected: str
    html_edit: Callable[[str], str] | None = None


DEFECTS = [
    Defect("wrong colour", "#plan-pro .buy { background: #16a34a; }\n", "#plan-pro > button.buy"),
    Defect("padding", "#plan-team { padding: 36px; }\n", "#plan-team"),
    Defect("font size", "#plan-basic h3 { font-size: 28px; }\n", "#plan-basic > h3"),
    Defect(
        "hidden element", "#plan-pro .badge { visibility: hidden; }\n", "#plan-pro > span.badge"
    ),
    Defect("swapped order", "#plan-basic { order: 2; }\n", "#plan-"),
    Defect("missing card", "", "main.cards", _drop_team_card),
]


def write_defective(root: Path, defect: Defect) -> Path:
    html = page_html()
    if defect.html_edit is not None:
        html = defect.html_edit(html)
    return write_page(root, defect.css, html)
