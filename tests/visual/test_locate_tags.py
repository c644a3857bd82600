"""Element-type CSS rules are sources too (issue #14 item 8): `main {…}`, `button {…}`."""

from __future__ import annotations

from pathlib import Path

from kcode.visual.locate import SourceIndex

CSS = """body {
  margin: 0;
}

main {
  padding: 10px;
}

button {
  color: red;
}
.card button:hover, .x {
  color: blue;
}
.main { color: green; }
.btn { border: 0; }
"""
HTML = """<html><head><link rel="stylesheet" href="style.css"></head>
<body>
<main>
<button>Go</button>
<button class="btn">Ok</button>
</main>
</body></html>
"""


def index(tmp_path: Path) -> SourceIndex:
    (tmp_path / "style.css").write_text(CSS)
    (tmp_path / "index.html").write_text(HTML)
    sources = SourceIndex(tmp_path)
    sources.refresh()
    return sources


def test_bare_tags_find_their_rule_then_their_markup(tmp_path: Path) -> None:
    sources = index(tmp_path)
    assert sources.find(None, [], "main") == ["style.css:5", "index.html:3"]
    assert sources.find(None, [], "button")[0] == "style.css:9"


def test_class_and_context_rules_still_outrank_the_tag_rule(tmp_path: Path) -> None:
    sources = index(tmp_path)
    assert sources.find(None, ["main"], "div") == ["style.css:15"]  # `.main`, not `main`
    assert sources.find(None, ["btn"], "button")[:2] == ["style.css:16", "style.css:9"]
    assert sources.find(None, [], "button", [".card"])[:2] == ["style.css:12", "style.css:9"]
