"""Issue #12 item 3: the event protocol is closed, versioned and pinned.

stream-json prints `Event.to_json()` verbatim, so every event's field names and types are a public
contract. tests/seam/golden_events.json pins them together with SCHEMA_VERSION: changing a field
without bumping the version fails here. After a deliberate change: bump SCHEMA_VERSION in
kcode/events.py, note it in the README (stream-json), and regenerate the golden file with
`KCODE_UPDATE_GOLDEN=1 pytest tests/seam/test_protocol.py`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, get_args, get_origin, get_type_hints

import pytest

from kcode import events
from kcode.cli.help import EXIT_CODES as EXIT_CODES_HELP
from kcode.events import EVENT_TYPES, SCHEMA_VERSION, TURN_REASONS, AnyEvent, Event, closed
from kcode.exit_codes import ENDS_RUN, EXIT_CODES, exit_code
from kcode.ui.printers import make_printer

GOLDEN = Path(__file__).with_name("golden_events.json")
README = Path(__file__).parents[2] / "README.md"


def _type_name(hint: Any) -> str:
    """A stable spelling of a field's type, independent of the Python version's reprs."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(json.dumps(a) for a in args) + "]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if hint is Any:
        return "Any"
    if hint is type(None):
        return "None"
    return str(hint.__name__)


def schema() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, cls in sorted(EVENT_TYPES.items()):
        hints = get_type_hints(cls, vars(events))
        out[name] = {
            f.name: _type_name(hints[f.name]) for f in dataclasses.fields(cls)
        }  # ClassVar `type` is not a field; it is always the first key of the JSON object
    return out


def sample(cls: type[Event]) -> Event:
    """An instance with every field set (optional ones to a non-default value where possible)."""
    values: dict[str, Any] = {}
    hints = get_type_hints(cls, vars(events))
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if get_origin(hint) in (typing.Union, types.UnionType):
            hint = next(a for a in get_args(hint) if a is not type(None))
        kind = hint
        origin = get_origin(kind)
        if origin is typing.Literal:
            values[f.name] = get_args(kind)[0]
        elif origin is dict or kind is dict:
            values[f.name] = {"k": "v"}
        elif origin is list or kind is list:
            values[f.name] = []
        else:
            values[f.name] = {str: "x", int: 1, float: 1.5, bool: True}[kind]
    return cls(**values)


def test_every_event_is_in_the_closed_union() -> None:
    declared = {
        obj
        for obj in vars(events).values()
        if isinstance(obj, type) and issubclass(obj, Event) and obj is not Event
    }
    assert declared == set(get_args(AnyEvent)), "add the new event class to AnyEvent"
    assert len(EVENT_TYPES) == len(get_args(AnyEvent)), "two events share a `type`"


def test_the_json_fields_match_the_golden_file() -> None:
    current = {"schema_version": SCHEMA_VERSION, "events": schema()}
    if os.environ.get("KCODE_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    if current["events"] != golden["events"]:
        assert SCHEMA_VERSION != golden["schema_version"], (
            "the stream-json fields changed without bumping SCHEMA_VERSION (kcode/events.py)"
        )
        pytest.fail(
            "the stream-json fields changed: document it in the README and regenerate "
            "tests/seam/golden_events.json (KCODE_UPDATE_GOLDEN=1)"
        )
    assert golden["schema_version"] == SCHEMA_VERSION, "regenerate golden_events.json"


def test_the_readme_names_the_current_schema_version() -> None:
    text = README.read_text(encoding="utf-8")
    assert re.search(rf"schema_version[`\s]*(is|=|:)?\s*`?{SCHEMA_VERSION}\b", text), (
        "README.md should say which stream-json schema_version this is"
    )


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_each_event_serialises_to_exactly_its_pinned_fields(name: str) -> None:
    event = sample(EVENT_TYPES[name])
    obj = json.loads(json.dumps(event.to_json()))
    assert list(obj)[0] == "type" and obj["type"] == name
    assert set(obj) == {"type", *schema()[name]}
    assert {"agent", "ts", "parent_call_id"} <= set(obj)


@pytest.mark.parametrize("fmt", ["text", "json", "stream-json"])
def test_every_printer_accepts_every_event(fmt: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = make_printer(fmt, out, err)
    for name in sorted(EVENT_TYPES):
        printer.event(sample(EVENT_TYPES[name]))
    printer.finish({"result": "done"})
    if fmt == "stream-json":
        types_seen = [json.loads(line)["type"] for line in out.getvalue().splitlines()]
        assert types_seen == [*sorted(EVENT_TYPES), "result"]


@dataclass(kw_only=True)
class Stray(Event):
    type: ClassVar[str] = "stray"
    text: str


@pytest.mark.parametrize("fmt", ["text", "json", "stream-json"])
def test_an_event_outside_the_protocol_is_refused(fmt: str) -> None:
    with pytest.raises(TypeError, match="not part of the event protocol"):
        closed(Stray(text="x"))
    printer = make_printer(fmt, io.StringIO(), io.StringIO())
    with pytest.raises(TypeError, match="not part of the event protocol"):
        printer.event(Stray(text="x"))


def test_one_exit_code_per_turn_reason() -> None:
    assert set(EXIT_CODES) == set(TURN_REASONS)
    assert ENDS_RUN <= set(TURN_REASONS)
    assert exit_code("completed") == 0 and exit_code("failed") == 1
    assert exit_code("backend_error") == 3 and exit_code("approval_required") == 4
    assert {exit_code(r) for r in ("max_steps", "budget_exceeded", "timeout")} == {5}
    assert exit_code("cancelled") == 130
    for code in set(EXIT_CODES.values()):  # every code a reason can produce is documented
        assert re.search(rf"^\s*{code}\s", EXIT_CODES_HELP, re.M), code


def test_front_ends_keep_no_exit_code_map_of_their_own() -> None:
    root = Path(__file__).parents[2] / "kcode"
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "exit_codes.py":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"[\"']approval_required[\"']\s*:\s*\d", text):
            offenders.append(str(path.relative_to(root)))
    assert offenders == [], f"reason→exit-code maps outside kcode/exit_codes.py: {offenders}"
