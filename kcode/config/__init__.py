"""Configuration: layered loading, the settings record, display."""
