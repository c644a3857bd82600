"""The OpenAI-compatible chat completions backend and its HTTP transports."""
