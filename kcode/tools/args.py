"""The base class of every tool's argument model (pydantic: validation and the JSON schema).

Kept apart from tools/base.py so the agent loop can start, and send its first request with cached
schemas (tools/spec_cache.py), before pydantic is imported.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ToolArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
