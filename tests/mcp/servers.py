"""Real MCP servers for the tests, written with the SDK's own server class (`MCPServer`, mcp 2.x).

    python servers.py MODE [--http PORT | --sse PORT] [--marker FILE]

MODE: basic (echo, add, slow, die, a prompt and a resource), crash (exits at start), hang (never
answers), garbage (answers with noise), many (150 tools), refs (schemas with $ref outside $defs),
quiet (one tool; for the benchmark), clash and plain (tool names that collide once
prefixed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def build(mode: str) -> object:
    from mcp.server.mcpserver import Context, MCPServer

    globals()["Context"] = Context  # the SDK resolves the tools' (string) annotations here

    server = MCPServer(f"test-{mode}", log_level="ERROR")
    if mode in ("basic", "quiet"):

        @server.tool()
        def echo(text: str) -> str:
            """Return the text unchanged."""
            return f"echo: {text}"

    if mode == "basic":

        @server.tool()
        def add(a: int, b: int) -> str:
            """Add two integers."""
            return str(a + b)

        @server.tool()
        def slow(seconds: float) -> str:
            """Sleep, then answer."""
            time.sleep(seconds)
            return "done"

        @server.tool()
        def die() -> str:
            """Kill the server process in the middle of the call."""
            os._exit(7)

        @server.tool()
        def fail() -> str:
            """A tool that reports an error."""
            from mcp.server.mcpserver.exceptions import ToolError

            raise ToolError("the tool says no")

        @server.tool()
        def big() -> str:
            """Far more output than any tool may return."""
            return "x" * 200_000

        @server.tool()
        async def grow(ctx: Context) -> str:  # type: ignore[type-arg]
            """Add a tool and announce the changed list."""

            def grown() -> str:
                return "I am new"

            server.add_tool(grown, name="grown", description="Added at run time.")
            await ctx.notify_tools_changed()
            return "grew"

        @server.prompt()
        def review(topic: str) -> str:
            """Ask for a review of a topic."""
            return f"Please review {topic} carefully."

        @server.resource("note://hello")
        def hello_note() -> str:
            """A note."""
            return "hello from the note resource"

    if mode in ("clash", "plain"):
        # Names that collide once prefixed (kcode.mcp.naming): `b__c` here vs server `a__b`'s `c`,
        # and `x.y` vs `x_y` (both sanitise to `x_y`).
        def answer(text: str):  # type: ignore[no-untyped-def]
            return lambda: text

        names = ("b__c", "x.y", "x_y") if mode == "clash" else ("c",)
        for name in names:
            server.add_tool(answer(f"{mode} {name}"), name=name, description=f"The {name} tool.")
    if mode == "many":
        for i in range(150):

            def make(i: int = i) -> object:
                def tool(value: str = "") -> str:
                    return f"tool {i}: {value}"

                return tool

            server.add_tool(make(), name=f"tool_{i:03d}", description=f"Numbered tool {i}.")
    if mode == "refs":

        @server.tool()
        def create_user(user: dict) -> str:  # type: ignore[type-arg]
            """Create a user."""
            return f"created {user.get('name')}"

        tool = server._tool_manager.get_tool("create_user")
        tool.parameters = {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "user": {"$ref": "#/definitions/User"},
                "backup": {"$ref": "#/properties/user"},
                "remote": {"$ref": "https://example.com/schema.json"},
            },
            "required": ["user"],
            "definitions": {
                "User": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "boss": {"$ref": "#/definitions/User"},
                    },
                }
            },
        }
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("--http", type=int, default=0)
    parser.add_argument("--sse", type=int, default=0)
    parser.add_argument("--marker", default="")
    args = parser.parse_args()
    if args.marker:
        Path(args.marker).write_text(f"started {os.getpid()}\n", encoding="utf-8")
    if args.mode == "crash":
        sys.stderr.write("fatal: this server cannot start (test)\n")
        sys.exit(3)
    if args.mode == "hang":
        time.sleep(3600)
    if args.mode == "garbage":
        for line in sys.stdin:
            sys.stdout.write("this is not JSON-RPC " + line[:20] + "\n")
            sys.stdout.flush()
        return
    server = build(args.mode)
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)  # type: ignore[attr-defined]
    elif args.sse:
        server.run("sse", host="127.0.0.1", port=args.sse)  # type: ignore[attr-defined]
    else:
        server.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
