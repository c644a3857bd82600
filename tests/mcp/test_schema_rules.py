"""Schema cleaning for strict providers, tool naming, and rules/approval for MCP tools."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcode.mcp.naming import MAX_NAME, tool_name
from kcode.mcp.schema import clean_schema, refs_ok
from kcode.safety.approval import ApprovalRequest, NonInteractiveApprover, combined_verdict
from kcode.safety.rules import RuleError, RuleSet


def test_refs_outside_defs_are_rewritten_and_unsupported_keys_dropped() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "urn:x",
        "type": "object",
        "properties": {
            "user": {"$ref": "#/definitions/User", "description": "who"},
            "copy": {"$ref": "#/properties/user"},
            "remote": {"$ref": "https://example.com/s.json"},
            "broken": {"$ref": "#/definitions/Missing"},
            "flag": True,
        },
        "definitions": {
            "User": {"type": "object", "properties": {"boss": {"$ref": "#/definitions/User"}}}
        },
    }
    out = clean_schema(schema)
    assert refs_ok(out) and not refs_ok(schema)
    assert "$schema" not in out and "$id" not in out and "definitions" not in out
    assert out["properties"]["user"] == {"$ref": "#/$defs/User", "description": "who"}
    assert out["$defs"]["User"]["properties"]["boss"] == {"$ref": "#/$defs/User"}
    assert out["properties"]["remote"] == {} and out["properties"]["broken"] == {}
    assert out["properties"]["flag"] == {}
    assert schema["properties"]["user"]["$ref"] == "#/definitions/User"  # input untouched


def test_pydantic_style_defs_and_a_root_ref_survive() -> None:
    inner = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    out = clean_schema({"$ref": "#/$defs/Args", "$defs": {"Args": inner}})
    assert out["properties"] == {"n": {"type": "integer"}} and out["required"] == ["n"]
    assert refs_ok(out)


@pytest.mark.parametrize(
    "schema",
    [
        None,
        [],
        "x",
        {"type": "string"},
        {"type": "object", "required": "n"},
        {"properties": {"a": {"items": [{"type": "string"}]}}},
    ],
)
def test_odd_roots_become_a_plain_object(schema: object) -> None:
    out = clean_schema(schema)
    assert out["type"] == "object" and isinstance(out["properties"], dict)
    assert "required" not in out or isinstance(out["required"], list)


def test_deep_or_huge_schemas_do_not_crash() -> None:
    deep: dict[str, object] = {"type": "string"}
    for _ in range(3000):
        deep = {"type": "object", "properties": {"a": deep}}
    assert clean_schema(deep)["type"] == "object"
    huge = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5000)}}
    assert clean_schema(huge) == {"type": "object", "properties": {}}


JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
              st.sampled_from(["#", "#/definitions/A", "#/$defs/A", "#/properties", "http://x"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["$ref", "type", "properties", "items", "anyOf",
                                         "definitions", "$defs", "A", "a", "required"]), inner,
                        max_size=4),
    ),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(JSONISH)
def test_any_input_gives_an_object_schema_with_only_defs_refs(schema: object) -> None:
    out = clean_schema(schema)
    assert out["type"] == "object" and refs_ok(out)
    json.dumps(out)


def test_tool_names_fit_providers() -> None:
    assert tool_name("github", "create_issue") == "mcp__github__create_issue"
    assert tool_name("my.srv", "a/b c") == "mcp__my_srv__a_b_c"
    long_a, long_b = tool_name("s", "x" * 100 + "a"), tool_name("s", "x" * 100 + "b")
    assert len(long_a) == len(long_b) == MAX_NAME and long_a != long_b


def request(tool: str, args: dict[str, object]) -> ApprovalRequest:
    return ApprovalRequest("mcp", tool, f"call {tool}", json.dumps(args, indent=2))


def test_rules_name_mcp_tools_like_claude() -> None:
    rules = RuleSet.parse(
        {
            "allow": ["mcp__github__*", "mcp__db__query(*SELECT*)"],
            "deny": ["mcp__github__delete_repo"],
            "ask": ["mcp__fs"],
        }
    )
    assert combined_verdict("ask", rules, request("mcp__github__list", {}))[0] == "allow"
    assert combined_verdict("auto", rules, request("mcp__github__delete_repo", {}))[0] == "deny"
    assert combined_verdict("auto", rules, request("mcp__fs__write", {}))[0] == "ask"
    assert (
        combined_verdict("ask", rules, request("mcp__db__query", {"q": "SELECT 1"}))[0] == "allow"
    )
    assert combined_verdict("ask", rules, request("mcp__db__query", {"q": "DROP t"}))[0] == "ask"
    shortened = ApprovalRequest("mcp", "mcp__db__query", "call mcp__db__query", '{"q": "SELECT\n…')
    assert combined_verdict("ask", rules, shortened)[0] == "ask"  # a cut detail vouches for nothing
    # No rule: the mode decides, like shell.
    assert combined_verdict("auto", None, request("mcp__x__y", {}))[0] == "allow"
    assert combined_verdict("auto-edit", None, request("mcp__x__y", {}))[0] == "ask"
    assert combined_verdict("read-only", rules, request("mcp__github__list", {}))[0] == "deny"
    with pytest.raises(RuleError):
        RuleSet.parse({"allow": ["mcp__bad name"]})


def test_non_interactive_names_the_flag_and_the_rule() -> None:
    from kcode.safety.approval import ApprovalRequired

    approver = NonInteractiveApprover("auto-edit", None)
    with pytest.raises(ApprovalRequired) as caught:
        asyncio.run(approver.decide(request("mcp__gh__x", {})))
    assert "--approval auto" in str(caught.value) and '"mcp__gh__x"' in str(caught.value)
