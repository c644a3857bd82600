"""MCP tool input schemas made acceptable to strict providers.

A server's schema is untrusted input and often sloppy: `$ref`s into `#/definitions/` or
`#/properties/...` (Kimi refuses any `$ref` outside `#/$defs/`), remote refs, `$schema`/`$id`
keywords some providers reject, a root that is not an object, boolean sub-schemas, huge or deeply
nested documents. `clean_schema` returns a new schema where every `$ref` points into the root's
`$defs`, unsupported keywords are gone and the root is an object; whatever cannot be made sound is
replaced by a permissive `{}`, never an error.
"""

from __future__ import annotations

import copy
import json
from typing import Any

MAX_SCHEMA_CHARS = 64_000
MAX_DEPTH = 40
MAX_DEFS = 200
# Keywords dropped everywhere: meta-data some providers reject and that the model does not need.
DROP_KEYS = frozenset(
    {"$schema", "$id", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary", "$comment"}
)
PERMISSIVE_ROOT: dict[str, Any] = {"type": "object", "properties": {}}


class _Cleaner:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.defs: dict[str, Any] = {}
        self.pending: dict[str, str] = {}  # JSON pointer -> def name (being or already inlined)

    def pointer_target(self, pointer: str) -> Any:
        node: Any = self.root
        for raw in pointer.split("/")[1:]:
            key = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                return None
        return node

    def def_name(self, pointer: str) -> str:
        base = pointer.rstrip("/").rsplit("/", 1)[-1] or "root"
        base = "".join(c if c.isalnum() or c in "_-" else "_" for c in base) or "def"
        name, n = base, 1
        while name in self.defs or name in self.pending.values():
            n += 1
            name = f"{base}_{n}"
        return name

    def ref(self, ref: Any, depth: int) -> dict[str, Any]:
        if not isinstance(ref, str) or not ref.startswith("#"):
            return {}  # remote or malformed: the model gets "anything", the server validates
        pointer = ref[1:]
        if pointer in self.pending:
            return {"$ref": f"#/$defs/{self.pending[pointer]}"}
        if len(self.pending) >= MAX_DEFS:
            return {}
        target = self.pointer_target(pointer) if pointer else self.root
        if target is None or not isinstance(target, dict | bool):
            return {}
        name = self.def_name(pointer)
        self.pending[pointer] = name
        self.defs[name] = self.clean(target, depth + 1)
        return {"$ref": f"#/$defs/{name}"}

    def clean(self, node: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            return {}
        if isinstance(node, bool):
            return {} if node else {"not": {}}
        if not isinstance(node, dict):
            return {}
        if "$ref" in node:
            out = self.ref(node["$ref"], depth)
            for key in ("description", "default"):  # 2020-12 allows siblings of a $ref
                if key in node:
                    out[key] = copy.deepcopy(node[key])
            return out
        result: dict[str, Any] = {}
        for key, value in node.items():
            if key in DROP_KEYS or key in ("$defs", "definitions"):
                continue
            if key in ("properties", "patternProperties", "dependentSchemas"):
                if isinstance(value, dict):  # a property named "$ref" reads as a reference: dropped
                    result[key] = {
                        str(k): self.clean(v, depth + 1) for k, v in value.items() if k != "$ref"
                    }
            elif key in ("items", "additionalProperties", "not", "contains", "propertyNames",
                         "if", "then", "else", "unevaluatedProperties", "unevaluatedItems",
                         "additionalItems"):  # fmt: skip
                if isinstance(value, list):  # draft-4 tuple `items`
                    result["prefixItems" if key == "items" else key] = [
                        self.clean(v, depth + 1) for v in value
                    ]
                elif isinstance(value, bool) and key in ("additionalProperties",):
                    result[key] = value
                else:
                    result[key] = self.clean(value, depth + 1)
            elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
                if isinstance(value, list):
                    result[key] = [self.clean(v, depth + 1) for v in value]
            elif not _has_ref(value):  # data keywords (enum, default, format...) pass as they are
                result[key] = copy.deepcopy(value)
        return result


def _has_ref(value: Any) -> bool:
    """A `$ref` hidden in a keyword kcode does not walk: strict providers refuse it, so drop it."""
    if isinstance(value, dict):
        return "$ref" in value or any(_has_ref(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_ref(v) for v in value)
    return False


def clean_schema(schema: Any) -> dict[str, Any]:
    """A copy of `schema` whose `$ref`s all point into `#/$defs/` and whose root is an object."""
    try:
        if not isinstance(schema, dict) or len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
            return copy.deepcopy(PERMISSIVE_ROOT)
        # definitions/$defs are walked through their refs, so unused ones disappear.
        cleaner = _Cleaner(schema)
        node: Any = schema
        for _ in range(5):  # a root that is only a $ref (some generators emit it): follow it
            ref = node.get("$ref") if isinstance(node, dict) else None
            if not (isinstance(ref, str) and ref.startswith("#/")):
                break
            node = cleaner.pointer_target(ref[1:])
        out = cleaner.clean(node, 0)
    except (RecursionError, ValueError, TypeError):
        return copy.deepcopy(PERMISSIVE_ROOT)
    if not isinstance(out, dict) or "$ref" in out or out.get("type", "object") != "object":
        # Tool arguments are always an object (MCP spec); a root ref or another type is wrapped away.
        return copy.deepcopy(PERMISSIVE_ROOT)
    out["type"] = "object"
    if not isinstance(out.get("properties"), dict):
        out["properties"] = {}
    required = out.get("required")
    if required is not None and not (
        isinstance(required, list) and all(isinstance(r, str) for r in required)
    ):
        del out["required"]
    if cleaner.defs:
        out["$defs"] = cleaner.defs
    return out


def refs_ok(schema: Any) -> bool:
    """Every `$ref` in `schema` points to an existing `#/$defs/NAME` (what Kimi accepts)."""
    defs = schema.get("$defs", {}) if isinstance(schema, dict) else {}

    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                if not (isinstance(ref, str) and ref.startswith("#/$defs/")):
                    return False
                if ref[len("#/$defs/") :] not in defs:
                    return False
            return all(walk(v) for v in node.values())
        if isinstance(node, list):
            return all(walk(v) for v in node)
        return True

    return walk(schema)
