"""Model backends. Import concrete backends lazily through `create_backend` (they pull heavy SDKs)."""
