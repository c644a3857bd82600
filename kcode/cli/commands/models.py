"""`kcode models list | pull SPEC | path SPEC`: local GGUF models (SPEC = owner/repo[:file] or a path).

Exit codes follow SPEC §3: 2 for a spec kcode cannot use, 3 when the hub cannot be reached or the
model does not exist there.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from kcode.backends.base import BackendError
from kcode.backends.llama.models import (
    BUNDLED_SPEC,
    DEFAULT_LOCAL_MODEL,
    bundled_model,
    inspect_gguf,
    list_cached_models,
    resolve_model,
)

if TYPE_CHECKING:
    from kcode.cli.parse import Invocation


def _fail(err: BackendError) -> Exception:
    from kcode.cli.main import CommandFailed

    return CommandFailed(err.message, 2 if err.kind == "config" else 3)


def list_models(inv: Invocation | None = None) -> int:
    """The bundled model (`--model bundled`) and the models downloaded into the Hugging Face cache."""
    bundled = bundled_model()
    if bundled is not None:
        size = bundled.stat().st_size
        sys.stdout.write(f"{BUNDLED_SPEC}\t{size / 1e9:.2f} GB\t{bundled}\t(bundled)\n")
    models = list_cached_models()
    if not models:
        sys.stdout.write(
            f"no downloaded models yet; download one with: kcode models pull {DEFAULT_LOCAL_MODEL}\n"
        )
        return 0
    for model in models:
        sys.stdout.write(f"{model.spec}\t{model.size_bytes / 1e9:.2f} GB\t{model.path}\n")
    return 0


def pull(inv: Invocation) -> int:
    """Download a model (progress on stderr; an interrupted download resumes) and check it."""
    spec: str = inv["spec"] or DEFAULT_LOCAL_MODEL
    try:
        path = resolve_model(spec, download=True)
        info = inspect_gguf(path)
    except BackendError as err:
        raise _fail(err) from None
    sys.stdout.write(f"{path}\t{info.architecture}\t{info.size_bytes / 1e9:.2f} GB\n")
    return 0


def path(inv: Invocation) -> int:
    """Print the local file of a model without downloading it."""
    try:
        resolved = resolve_model(inv["spec"], download=False)
    except BackendError as err:
        raise _fail(err) from None
    sys.stdout.write(f"{resolved}\n")
    return 0
