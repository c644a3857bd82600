"""Shared pytest fixtures. tests/ is a package, so pytest puts the repo root on sys.path and test
helpers import as `from tests.fake_openai import FakeOpenAIServer`."""
