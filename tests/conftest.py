"""Shared pytest fixtures. tests/ is a package, so pytest puts the repo root on sys.path and test
helpers import as `from tests.fake_openai import FakeOpenAIServer`."""

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _fake_openai_histories_pair_up() -> Iterator[None]:
    """Issue #12: a request whose tool calls and results do not pair up fails the test that caused
    it, even when the test expected the run to fail anyway (an exit 3 must not hide it)."""
    from tests import fake_openai

    yield
    servers, fake_openai.CREATED[:] = list(fake_openai.CREATED), []
    seen = [v for s in servers if not s.violations_expected for v in s.violations]
    assert not seen, f"the fake OpenAI server refused broken histories: {seen}"
