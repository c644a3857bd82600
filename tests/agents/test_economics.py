"""Issue #16: budgets checked while replies stream, cost and cache figures per agent, stable prefixes.

Everything runs against the fake OpenAI server over real HTTP, with the real Agent loop,
orchestrator, tools and git worktrees.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from kcode.agents.budget import (
    BudgetError,
    Limits,
    RunBudget,
    parse_limits,
    parse_max_cost,
    parse_max_tokens,
)
from kcode.agents.prices import FREE, Price, PriceError, PriceTable, parse_prices
from kcode.agents.prompt_cache import common_prefix, discard_warning, prompt_bytes
from kcode.backends.base import BackendOptions, ToolSpec
from kcode.backends.openai.api import OpenAIBackend
from kcode.backends.openai.chat_chunks import usage_of
from kcode.events import AgentFinished, BudgetWarning, Usage
from kcode.messages import Message
from tests.agents.helpers import finished, main_agent, make_repo, run
from tests.fake_openai import ByConversation, FakeOpenAIServer, Reply

MAIN = "MAIN: fan out"
PRICE = Price(1.0, 0.1, 2.0)  # USD per million tokens: easy arithmetic


def fanout(tasks: list[dict[str, Any]], **kw: Any) -> Reply:
    return Reply.tool_call("spawn_agents", {"tasks": tasks}, **kw)


def metered(
    agent: Any, limits: Limits | None = None, prices: dict[str, Price] | None = None
) -> Any:
    agent.meter = RunBudget(limits, PriceTable(prices or {"fake-model": PRICE})).meter("main")
    agent.ctx.spawner.parent_meter = agent.meter
    return agent


# --- parsing ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["-5", "0", "abc", "1.5", "", "1e9"])
def test_bad_token_budgets_are_refused_in_one_line(bad: str) -> None:
    with pytest.raises(BudgetError) as err:
        parse_max_tokens(bad)
    assert "\n" not in str(err.value) and "--max-tokens" in str(err.value)


@pytest.mark.parametrize("bad", ["-1", "0", "abc", "nan", "inf", ""])
def test_bad_cost_budgets_are_refused_in_one_line(bad: str) -> None:
    with pytest.raises(BudgetError) as err:
        parse_max_cost(bad)
    assert "\n" not in str(err.value) and "--max-cost" in str(err.value)


def test_good_budgets_and_limits_table() -> None:
    assert parse_max_tokens("200_000") == 200_000
    assert parse_max_cost("$2.50") == 2.5
    assert parse_limits({"max_tokens": 10, "max_cost": 1}) == Limits(10, 1.0)
    with pytest.raises(BudgetError, match="unknown key"):
        parse_limits({"max_token": 10})


def test_price_table_lookup_overrides_and_unknown_models() -> None:
    table = PriceTable(parse_prices({"my-model": {"input": 1, "output": 2}}))
    assert table.lookup("my-model") == Price(1.0, 1.0, 2.0)  # cached_input defaults to input
    assert table.lookup("kimi-k2.5") == Price(0.60, 0.10, 3.00)
    assert table.lookup("moonshotai/kimi-k2.5") == Price(0.60, 0.10, 3.00)
    assert table.lookup("gpt-4o-mini-2024-07-18") == table.lookup("gpt-4o-mini")
    assert table.lookup("qwen-coder-local") is None
    assert PriceTable(local=True).lookup("anything.gguf") == FREE
    assert Price(1.0, 0.1, 2.0).cost(1_000_000, 500_000, 1_000_000) == pytest.approx(2.55)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"input": "a", "output": 1}, "not a number"),
        ({"input": -1, "output": 1}, ">= 0"),
        ({"output": 1}, "`input` is missing"),
        ({"input": 1, "output": 1, "cache": 1}, "unknown field"),
        ("cheap", "must be a table"),
    ],
)
def test_price_entries_that_do_not_parse_are_clear_errors(entry: Any, message: str) -> None:
    with pytest.raises(PriceError, match=message) as err:
        parse_prices({"m": entry})
    assert '[prices."m"]' in str(err.value)


def test_usage_details_from_openai_and_moonshot() -> None:
    openai = usage_of(
        {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 12},
        }
    )
    assert openai is not None and (openai.cached_tokens, openai.reasoning_tokens) == (64, 12)
    moonshot = usage_of({"prompt_tokens": 100, "completion_tokens": 20, "cached_tokens": 80})
    assert moonshot is not None and moonshot.cached_tokens == 80
    hostile = usage_of({"prompt_tokens": 1, "completion_tokens": 1, "cached_tokens": "lots"})
    assert hostile is not None and hostile.cached_tokens == 0


# --- the request -----------------------------------------------------------------------------
def test_cache_key_effort_and_kimi_sampling_go_only_where_the_api_takes_them() -> None:
    spec = [ToolSpec("grep", "search", {"type": "object", "properties": {}})]
    history = [Message.system("s"), Message.user("u")]
    opts = BackendOptions(model="gpt-5-mini", cache_key="kcode-x-main", reasoning_effort="low")
    body = OpenAIBackend("https://api.openai.com/v1", "k", "m").build_request(history, spec, opts)
    assert body["prompt_cache_key"] == "kcode-x-main" and body["reasoning_effort"] == "low"
    assert list(body)[:4] == ["model", "prompt_cache_key", "tools", "tool_choice"]
    assert list(body).index("messages") < list(body).index("stream")
    moonshot = OpenAIBackend("https://api.moonshot.ai/v1", "k", "kimi-k2.5")
    body = moonshot.build_request(history, spec, BackendOptions(cache_key="k", thinking=False))
    assert "prompt_cache_key" not in body and body["temperature"] == 0.6
    assert body["thinking"] == {"type": "disabled"}
    assert moonshot.build_request(history, spec, BackendOptions())["temperature"] == 1.0
    own = moonshot.build_request(
        history, spec, BackendOptions(temperature=0.2, reasoning_effort="high")
    )
    assert own["temperature"] == 0.2 and "reasoning_effort" not in own


# --- budgets while streaming -----------------------------------------------------------------
async def test_a_sub_agent_over_its_cap_is_stopped_mid_stream(tmp_path: Path) -> None:
    long_answer = "word " * 2_000  # ~2,500 tokens at 4 characters a token, in 1,250 chunks
    scripts = {
        MAIN: [
            fanout(
                [
                    {"role": "search", "prompt": "task A: ramble", "max_tokens": 600},
                    {"role": "search", "prompt": "task B: answer briefly"},
                ]
            ),
            Reply.text("main done", usage=(300, 10)),
        ],
        "task A": [Reply.text(long_answer, chunk_delay_s=0.002, usage=(100, 2_500))],
        "task B": [Reply.text("RESULT: ok\nFINDINGS:\n- a.py:1\nNOTES: none", usage=(100, 20))],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        agent = metered(main_agent(backend, tmp_path))
        events = await run(agent, MAIN)
        await backend.aclose()
        rambling = [r for r in server.requests if _task_of(r) == "task A: ramble"]
    done = {e.agent_id: e for e in events if isinstance(e, AgentFinished)}
    a, b = done["search-1"], done["search-2"]
    assert not a.ok and a.error is not None and "budget is used up" in a.error
    assert b.ok
    # Stopped mid-stream: the client hung up long before the server's 1,250 text chunks.
    assert len(rambling) == 1 and rambling[0].events_sent < 600
    streamed = "".join(
        e.text
        for e in events
        if getattr(e, "text", None) and e.agent == "search-1" and e.type == "text_delta"
    )  # type: ignore[attr-defined]
    assert 0 < len(streamed) < len(long_answer)
    warned = [e for e in events if isinstance(e, BudgetWarning) and e.agent == "search-1"]
    assert warned and warned[0].scope == "agent" and warned[0].fraction >= 0.8
    assert finished(events).reason == "completed"  # the run itself had no cap


async def test_a_run_over_its_token_budget_ends_with_budget_exceeded(tmp_path: Path) -> None:
    scripts = {
        MAIN: [
            fanout([{"role": "search", "prompt": f"task {i}: look"} for i in range(3)]),
            Reply.text("never sent"),
        ],
        "*": [Reply.text("RESULT: ok\nFINDINGS:\n- a.py:1\nNOTES: none", usage=(400, 100))],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        agent = metered(main_agent(backend, tmp_path), Limits(max_tokens=1_500))
        events = await run(agent, MAIN)
        await backend.aclose()
        sent = len(server.requests)
    final = finished(events)
    assert final.reason == "budget_exceeded" and "--max-tokens" in final.result
    assert sent == 4  # the fan-out's three agents; the main agent's next request never left
    # Each sub-agent's reply was complete when its usage crossed its default share (what was
    # left / 3): kept, not thrown away; the run's cap stopped the main agent before its request.
    done = [e for e in events if isinstance(e, AgentFinished)]
    assert len(done) == 3 and all(e.ok for e in done)
    assert [m.role for m in agent.history][-1] == "tool"  # the fan-out's result is kept
    assert any(isinstance(e, BudgetWarning) and e.scope == "run" for e in events)


async def test_cost_and_cached_tokens_per_agent_in_stats_and_usage_events(tmp_path: Path) -> None:
    report = "RESULT: ok\nFINDINGS:\n- a.py:1\nNOTES: none"
    scripts = {
        MAIN: [
            fanout([{"role": "search", "prompt": "task X: find"}], usage=(1_000, 50)),
            Reply.text("done", usage=(2_000, 40), cached_tokens=1_000, reasoning_tokens=30),
        ],
        "task X": [Reply.text(report, usage=(500, 100), cached_tokens=400, usage_style="moonshot")],
    }
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        agent = metered(main_agent(backend, tmp_path))
        events = await run(agent, MAIN)
        await backend.aclose()
    stats = finished(events).stats
    main_row, sub_row = stats["agents"]
    # main: 3,000 in (1,000 cached), 90 out -> (2,000 * 1 + 1,000 * 0.1 + 90 * 2) / 1e6
    assert main_row["cached_tokens"] == 1_000 and main_row["reasoning_tokens"] == 30
    assert main_row["cost"] == pytest.approx(2_280e-6)
    assert sub_row["cached_tokens"] == 400 and sub_row["cost"] == pytest.approx(340e-6)
    assert stats["usage"]["cost"] == pytest.approx(2_620e-6)
    assert stats["usage"]["cache_hit_rate"] == pytest.approx(1_400 / 3_500, abs=1e-4)
    usage = [e for e in events if isinstance(e, Usage)]
    assert {e.agent for e in usage} == {"main", "search-1"}
    sub_usage = next(e for e in usage if e.agent == "search-1")
    assert sub_usage.cached_tokens == 400 and sub_usage.cost == pytest.approx(340e-6)
    assert json.loads(json.dumps(sub_usage.to_json()))["cost"] == pytest.approx(340e-6)


async def test_unknown_price_shows_tokens_and_a_null_cost(tmp_path: Path) -> None:
    with FakeOpenAIServer([Reply.text("hi", usage=(10, 2))]) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        agent = metered(main_agent(backend, tmp_path), prices={"other": PRICE})
        events = await run(agent, "hello")
        await backend.aclose()
    usage = finished(events).stats["usage"]
    assert usage["prompt_tokens"] == 10 and usage["cost"] is None


@pytest.mark.parametrize(
    ("cap", "word", "prices"),
    [
        ({"max_tokens": -5}, "max_tokens", None),
        ({"max_tokens": 0}, "max_tokens", None),
        ({"max_tokens": "lots"}, "max_tokens", None),
        ({"max_tokens": 1.5}, "max_tokens", None),
        ({"max_cost": -1}, "max_cost", None),
        ({"max_cost": "cheap"}, "max_cost", None),
        ({"max_cost": "inf"}, "max_cost", None),
        ({"max_cost": 1e400}, "max_cost", None),
        ({"max_cost": 0.5}, "no known price", {"other-model": PRICE}),  # cannot be counted
    ],
)
async def test_a_bad_cap_in_the_models_tool_call_is_an_error_result(
    tmp_path: Path, cap: dict[str, Any], word: str, prices: dict[str, Price] | None
) -> None:
    scripts = {MAIN: [fanout([{"role": "search", "prompt": "task Q", **cap}]), Reply.text("ok")]}
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        agent = metered(main_agent(backend, tmp_path), prices=prices)
        events = await run(agent, MAIN)
        await backend.aclose()
        spawned = [r for r in server.requests if _task_of(r).startswith("task Q")]
    result = next(m for m in agent.history if m.role == "tool")
    assert word in result.text and not any(isinstance(e, AgentFinished) for e in events)
    assert spawned == []  # nothing started


@pytest.mark.parametrize(
    ("table", "word"),
    [
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_tokens": "lots"}, "max_tokens"),
        ({"max_cost": "abc"}, "max_cost"),
        ({"max_cost": -1}, "max_cost"),
        ("200000", "must be a table"),
    ],
)
def test_a_bad_limits_table_is_a_one_line_error(table: Any, word: str) -> None:
    with pytest.raises(BudgetError) as err:
        parse_limits(table)
    assert "\n" not in str(err.value) and word in str(err.value)


def _task_of(record: Any) -> str:
    messages = (record.body or {}).get("messages") or [{}, {}]
    return str(messages[1].get("content", ""))


# --- prompt caching --------------------------------------------------------------------------
def _prompts(server: FakeOpenAIServer, needle: str) -> list[bytes]:
    return [prompt_bytes(r.raw) for r in server.requests if _task_of(r).startswith(needle)]


async def test_request_prefix_is_byte_identical_across_turns_and_role_siblings(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "A = 1\n", "b.py": "B = 2\n"})
    edit = "RESULT: ok\nCHANGES:\n- x\nNOTES: none"
    scripts = {
        MAIN: [
            Reply.tool_call("read_file", {"path": "a.py"}),
            fanout(
                [
                    {"role": "edit", "prompt": "task E1: edit a.py"},
                    {"role": "edit", "prompt": "task E2: edit b.py"},
                ]
            ),
            Reply.text("all done"),
        ],
        "task E1": [
            Reply.tool_call(
                "edit_file",
                {"path": "a.py", "edits": [{"old_string": "A = 1", "new_string": "A = 10"}]},
            ),
            Reply.text(edit),
        ],
        "task E2": [
            Reply.tool_call(
                "edit_file",
                {"path": "b.py", "edits": [{"old_string": "B = 2", "new_string": "B = 20"}]},
            ),
            Reply.text(edit),
        ],
    }
    with FakeOpenAIServer(ByConversation(scripts), simulate_cache=True) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        agent = metered(main_agent(backend, repo))
        events = await run(agent, MAIN)
        await backend.aclose()
        main = _prompts(server, MAIN)
        e1, e2 = _prompts(server, "task E1"), _prompts(server, "task E2")
    assert finished(events).reason == "completed"
    assert (repo / "a.py").read_text() == "A = 10\n" and (repo / "b.py").read_text() == "B = 20\n"
    assert len(main) == 3 and len(e1) == 2 and len(e2) == 2
    for turns in (main, e1, e2):
        for before, after in itertools.pairwise(turns):
            assert after.startswith(before)  # byte for byte: a cache hit on all of it
    # Two edit agents in two different worktrees: same system prompt and tools, then their task.
    shared = common_prefix(e1[0], e2[0])
    task_at = e1[0].index(b"task E1")
    assert shared >= task_at - len(b'{"role":"user","content":"') - 2
    assert b"system" in e1[0][:shared] and b"edit_file" in e1[0][:shared]
    # The simulated cache saw it: the second edit agent's first request was mostly cached.
    usage = [e for e in events if isinstance(e, Usage) and e.agent in ("edit-1", "edit-2")]
    assert max(e.cached_tokens for e in usage) > 0


def test_a_model_switch_or_clear_warns_that_the_cache_is_discarded() -> None:
    history = [Message.system("s" * 400), Message.user("u" * 400)]
    assert discard_warning(history[:1], "clear") is None
    model = discard_warning(history, "model")
    assert model is not None and model.type == "cache_warning" and "~200 tokens" in model.message
    clear = discard_warning(history, "clear")
    assert clear is not None and "system prompt and tools stay cached" in clear.message


async def test_a_role_keeps_its_prefix_across_fan_outs_with_other_briefs_and_days(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two fan-outs of one session, each with its own brief, the second one "after midnight": the
    search role's system prompt is the same up to the brief, which comes last."""
    report = "RESULT: ok\nFINDINGS:\n- a.py:1 A\nNOTES: none"
    scripts = {
        MAIN: [
            Reply.tool_call(
                "spawn_agents",
                {"tasks": [{"role": "search", "prompt": "task S1: a"}], "brief": "Brief one."},
            ),
            Reply.tool_call(
                "spawn_agents",
                {"tasks": [{"role": "search", "prompt": "task S2: b"}], "brief": "Brief two."},
            ),
            Reply.text("all done"),
        ],
        "task S1": [Reply.text(report)],
        "task S2": [Reply.text(report)],
    }
    (tmp_path / "AGENTS.md").write_text("Use 4-space indents.\n")
    with FakeOpenAIServer(ByConversation(scripts)) as server:
        backend = OpenAIBackend(server.base_url, "key", "fake-model", max_retries=0)
        agent = metered(main_agent(backend, tmp_path))
        import kcode.agents.roles as roles

        real = roles.time.strftime
        # Every date asked for after the orchestrator exists is the next day's.
        monkeypatch.setattr(
            roles.time, "strftime", lambda f, *a: "2099-01-01" if f == "%Y-%m-%d" else real(f, *a)
        )
        events = await run(agent, MAIN)
        await backend.aclose()
        s1, s2 = _prompts(server, "task S1")[0], _prompts(server, "task S2")[0]
    assert finished(events).reason == "completed"
    assert s1.index(b"search sub-agent") < s1.index(b"AGENTS") < s1.index(b"# Brief shared")
    assert common_prefix(s1, s2) == s1.index(b"Brief one.") + len(b"Brief ")  # all but the brief
    assert b"2099-01-01" not in s1 + s2  # the session's date, not the day of each fan-out
