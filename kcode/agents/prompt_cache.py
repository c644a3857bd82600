"""Prompt caching (issue #16): what keeps a request's prefix byte-stable, and how it is measured.

Providers cache the longest prefix of a prompt they have seen recently (OpenAI from 1,024 tokens,
Moonshot automatically) and bill those tokens at a fraction of the price. kcode keeps the prefix
stable by construction:

- the request body puts what is fixed for a session first (model, prompt_cache_key, tools) and the
  conversation after it; per-request settings follow the messages (OpenAIBackend.build_request);
- the system prompt (with the memory files) is built once per session and kept in the history:
  nothing in it changes between turns (the date is that of the session's start);
- sub-agents of one role get the same system prompt (the workspace root, not their worktree's;
  where their edits go is said in their task message), so their requests share that prefix;
- compaction keeps the system prompt and the user messages verbatim (kcode.agents.compaction), so
  everything up to the first summarised message is still cached afterwards;
- `prompt_cache_key` is `kcode-<session>-<role>`, sent only to OpenAI's API, which documents it.

A model switch or /clear throws the cached conversation away: `discard_warning` says so first.
"""

from __future__ import annotations

from collections.abc import Sequence

from kcode.events import CacheWarning
from kcode.messages import Message

CHARS_PER_TOKEN = 4


def conversation_tokens(history: Sequence[Message]) -> int:
    """A rough size of what the server has cached for this conversation (4 characters a token)."""
    chars = sum(len(m.text) + len(m.reasoning or "") for m in history)
    return chars // CHARS_PER_TOKEN


def discard_warning(
    history: Sequence[Message], reason: str, agent: str = "main"
) -> CacheWarning | None:
    """The warning to show before a model switch ("model") or /clear ("clear") discards the
    server's prompt cache; None when there is no conversation worth caching yet."""
    if len(history) <= 1:
        return None
    size = conversation_tokens(history)
    if reason == "model":
        message = (
            "switching models discards the server's prompt cache: the next request pays the full "
            f"input price for the whole conversation (~{size:,} tokens)"
        )
    else:
        message = (
            "clearing discards the cached conversation (~"
            f"{size:,} tokens); the system prompt and tools stay cached"
        )
    return CacheWarning(agent=agent, reason=reason, message=message)


def prompt_bytes(raw_body: bytes) -> bytes:
    """The part of a serialised chat request the provider turns into the prompt, in kcode's key
    order: everything before the per-request settings that follow the messages, without the
    messages' closing bracket (the next request continues the list there)."""
    end = raw_body.rfind(b'"stream":')
    head = raw_body[:end] if end > 0 else raw_body
    return head.rstrip(b", ").removesuffix(b"]")


def common_prefix(a: bytes, b: bytes) -> int:
    """Length of the longest common prefix of two byte strings."""
    limit = min(len(a), len(b))
    lo, hi = 0, limit
    while lo < hi:  # binary search on slices: memcmp-fast even for megabyte prompts
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
