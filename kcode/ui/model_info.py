"""Which model the REPL talks to, in words: for the toolbar, `/model`, and the first turn's note."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text

from kcode.safety.terminal_text import visible

if TYPE_CHECKING:
    from kcode.config.loader import Config


def model_name(config: Config, runtime: Any) -> str:
    """The model requests go out with, as far as it is known yet."""
    if config.model:
        return str(config.model)
    if runtime is not None:
        from kcode.runtime import model_label

        label = model_label(config, runtime.backend)
        if label:
            return label
    if config.base_url:
        return "the server's model"
    return str(config.backend or "no model")


def discovered_model_note(config: Config) -> Text | None:
    """With only a base URL: which model the server said it serves (kcode.backends.openai.discovery)."""
    if config.model or not config.base_url:
        return None
    from kcode.backends.openai.discovery import discovered

    found = discovered(config.base_url)
    if found is not None:
        return Text(visible(f"({found.describe(config.base_url)})"), "dim")
    return Text(
        visible(
            f'({config.base_url} did not list its models; sending model "default" — set one '
            "with /model NAME or --model)"
        ),
        "dim",
    )
