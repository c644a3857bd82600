"""The view_image tool: put an image file into the conversation, resized for the model (SPEC §5)."""

from __future__ import annotations

import asyncio

from pydantic import Field

from kcode.messages import ToolResult
from kcode.tools.base import Tool, ToolArgs, ToolContext, ToolError
from kcode.tools.confine import read_file_bytes

MAX_IMAGE_BYTES = 50 * 1024 * 1024


class ViewImageArgs(ToolArgs):
    path: str = Field(description="image file (PNG, JPEG, GIF, WebP)")


class ViewImageTool(Tool[ViewImageArgs]):
    name = "view_image"
    description = "Look at an image file (screenshot, diagram); it is added to the conversation."
    args_model = ViewImageArgs
    read_only = True

    async def run(self, args: ViewImageArgs, ctx: ToolContext) -> ToolResult:
        path = ctx.resolve(args.path)
        if not path.is_file():
            raise ToolError(f"{args.path} is not a file; check the path with glob")
        shown = ctx.display(path)
        # Regular, singly linked, no symlink swapped in, no FIFO to hang on (kcode.tools.confine);
        # the bytes read here are the ones decoded, so nothing is swapped in between.
        data = await asyncio.to_thread(read_file_bytes, path, ctx.roots, shown, MAX_IMAGE_BYTES)
        from kcode.images import ImageError, prepare_image_bytes  # Pillow: only when used

        try:
            prepared = await asyncio.to_thread(prepare_image_bytes, data, shown)
        except ImageError as err:
            raise ToolError(str(err)) from None
        width, height = prepared.size
        return ToolResult(
            call_id="",
            ok=True,
            content=f"{ctx.display(path)}: {prepared.describe()}",
            data={"width": width, "height": height, "mime": prepared.part.mime},
            images=(prepared.part,),
        )
