"""Which model an OpenAI-compatible server serves, when only its base URL is configured.

vLLM, OpenRouter and OpenAI reject `"model": "default"`; llama.cpp's server accepts anything but
names its model in `GET /v1/models`. So with a base URL and no model, kcode asks once (bounded
timeout, loopback or not), uses the only (or first) listed model, and says which it picked.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from kcode.safety.json_input import loads_json

DISCOVERY_TIMEOUT_S = 3.0
MAX_LISTING_BYTES = 2_000_000  # OpenRouter lists hundreds of models; anything bigger is not a list


@dataclass(frozen=True)
class DiscoveredModel:
    model: str
    listed: int  # how many models the server listed

    def describe(self, base_url: str) -> str:
        if self.listed == 1:
            return f"using {self.model}, the model {base_url} serves"
        return f"using {self.model}, the first of the {self.listed} models {base_url} lists"


_found: dict[str, DiscoveredModel] = {}  # per base URL, for the front ends to say which model


def discovered(base_url: str) -> DiscoveredModel | None:
    """What `discover_model` found for this base URL in this process, if it was asked."""
    return _found.get(base_url.rstrip("/"))


def discover_model(
    base_url: str, api_key: str = "", timeout_s: float = DISCOVERY_TIMEOUT_S
) -> DiscoveredModel | None:
    """The server's model from `GET {base_url}/models`, or None when it cannot say (any failure)."""
    request = urllib.request.Request(base_url.rstrip("/") + "/models")
    if api_key and api_key != "none":
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read(MAX_LISTING_BYTES + 1)
    except (OSError, ValueError, urllib.error.URLError):
        return None
    if len(body) > MAX_LISTING_BYTES:
        return None
    try:
        listing = loads_json(body)
    except (ValueError, UnicodeDecodeError):
        return None
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        return None
    ids = [
        item["id"] for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)
    ]
    ids = [i for i in ids if i.strip() and len(i) <= 256]
    if not ids:
        return None
    found = DiscoveredModel(ids[0], len(ids))
    _found[base_url.rstrip("/")] = found
    return found
