"""The tools the model can call (SPEC §5). See `registry.py` for the explicit list."""
