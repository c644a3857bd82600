"""JavaScript the renderer runs in the page: freezing animations, collecting and describing elements.

Our page functions are installed once per document by an init script (`page_library`) as the frozen
`window.__kcode`, and each call is the short expression `window.__kcode.call(name, arg)`
(channel.py). Sending the function source with every call made V8 compile it every time (the
arguments inside the expression defeat its compilation cache): 2-4 ms per call here. Results come
back as one JSON string (ENCODE_FN): Playwright's structured serialisation of nested objects costs
10-15 ms per call here.
"""

from __future__ import annotations

FREEZE_CSS = """
*, *::before, *::after {
  animation-duration: 0s !important; animation-delay: 0s !important;
  animation-iteration-count: 1 !important; animation-play-state: paused !important;
  transition: none !important; caret-color: transparent !important; scroll-behavior: auto !important;
}
"""

FREEZE_SCRIPT = (
    "(() => { const css = %s; const add = () => { const s = document.createElement('style');"
    " s.textContent = css; (document.head || document.documentElement).appendChild(s); };"
    " if (document.documentElement) add(); else document.addEventListener('DOMContentLoaded', add);"
    " })();".replace("%s", repr(FREEZE_CSS))
)


# Encodes a result as JSON text without consulting `toJSON`: JSON.stringify calls it on every array
# and object, and a page may have defined one on Array.prototype or Object.prototype (old Prototype.js
# did), turning our boxes into a string. Only primitives, which never consult it, go through the
# saved JSON.stringify; the built-ins used here are saved before the page's scripts run.
ENCODE_FN = """
(value) => {
  if (value === null || value === undefined || typeof value === 'function') return 'null';
  if (typeof value !== 'object') return STRINGIFY(value);
  if (isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i ? ',' : '') + K.encode(value[i]);
    return out + ']';
  }
  let out = '{';
  let first = true;
  for (const key of keys(value)) {
    out += (first ? '' : ',') + STRINGIFY(key) + ':' + K.encode(value[key]);
    first = false;
  }
  return out + '}';
}
"""


def page_library(functions: dict[str, str]) -> str:
    """The init script installing `functions` (name → function expression) as window.__kcode.

    Inside a function, `K` is the library (`K.describe(...)`). `window.__kcode.call(name, arg)` runs
    one and returns its result as JSON text (K.encode)."""
    members = "".join(f"  {name}: {source.strip()},\n" for name, source in functions.items())
    return (
        "(() => {\nconst STRINGIFY = JSON.stringify.bind(JSON);\n"
        "const isArray = Array.isArray; const keys = Object.keys;\nconst K = {\n"
        + members
        + f"  encode: {ENCODE_FN.strip()},\n"
        + "  call: async (name, arg) => K.encode(await K[name](arg)),\n};\n"
        "Object.defineProperty(window, '__kcode', {value: Object.freeze(K)});\n})();\n"
    )


# Collects the element boxes for the locator (fonts were awaited before); the elements are kept on
# window so a later call can describe only the few the locator picks. The settle and restyle
# functions (restyle.py) call it too, saving a round trip after them.
COLLECT_BOXES_FN = """
(limit) => {
  const skip = new Set(['SCRIPT', 'STYLE', 'LINK', 'META', 'HEAD', 'TITLE', 'NOSCRIPT', 'TEMPLATE']);
  const kept = []; const boxes = [];
  const all = document.body ? document.body.getElementsByTagName('*') : [];
  const vw = window.innerWidth, vh = Math.max(window.innerHeight, document.documentElement.scrollHeight);
  for (let i = 0; i < all.length && kept.length < limit; i++) {
    const el = all[i];
    if (skip.has(el.tagName)) continue;
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1 || r.right < 0 || r.bottom < 0 || r.left > vw || r.top > vh) continue;
    let depth = 0; for (let p = el.parentElement; p; p = p.parentElement) depth++;
    kept.push(el);
    boxes.push([r.left + window.scrollX, r.top + window.scrollY, r.width, r.height, depth]);
  }
  window.__kcodeElements = kept;
  return boxes;
}
"""


# Selector, tag, id, classes, short text and key computed styles of collected elements, by index into
# the last collected list (null for an index it does not have). The settle and restyle functions call
# it too, for the elements the locator picked recently.
DESCRIBE_FN = """
(indices) => {
  const els = window.__kcodeElements || [];
  const esc = (s) => (window.CSS && CSS.escape) ? CSS.escape(s) : s;
  function step(el) {
    let s = el.tagName.toLowerCase();
    const classes = Array.from(el.classList).slice(0, 2);
    if (classes.length) s += '.' + classes.map(esc).join('.');
    const parent = el.parentElement;
    if (parent) {
      const same = Array.from(parent.children).filter((c) => c.matches(s));
      if (same.length > 1) s += `:nth-of-type(${Array.from(parent.children)
        .filter((c) => c.tagName === el.tagName).indexOf(el) + 1})`;
    }
    return s;
  }
  function selector(el) {
    if (el.id) return '#' + esc(el.id);
    const parts = [];
    for (let cur = el; cur && cur !== document.body && parts.length < 4; cur = cur.parentElement) {
      if (cur.id) { parts.unshift('#' + esc(cur.id)); break; }
      parts.unshift(step(cur));
      try { if (document.querySelectorAll(parts.join(' > ')).length === 1) break; } catch (e) {}
    }
    return parts.join(' > ');
  }
  const keys = ['color', 'background-color', 'font-family', 'font-size', 'font-weight',
    'line-height', 'width', 'height', 'margin', 'padding', 'display', 'visibility', 'opacity',
    'border', 'border-radius', 'gap', 'flex-direction', 'justify-content', 'align-items', 'order'];
  return indices.map((i) => {
    const el = els[i];
    if (!el) return null;
    const cs = getComputedStyle(el);
    const styles = {};
    for (const k of keys) styles[k] = cs.getPropertyValue(k);
    let text = '';
    for (const n of el.childNodes) if (n.nodeType === 3) text += n.textContent;
    text = (text.trim() ? text : (el.textContent || '')).replace(/\\s+/g, ' ').trim().slice(0, 80);
    let context = [];
    for (let p = el.parentElement; p && !context.length; p = p.parentElement) {
      context = Array.from(p.classList).slice(0, 2).map((c) => '.' + c);
      if (p.id) context.push('#' + p.id);
    }
    return {selector: selector(el), tag: el.tagName.toLowerCase(), id: el.id || null,
      classes: Array.from(el.classList), text, styles, context};
  });
}
"""
