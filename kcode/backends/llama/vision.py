"""Images for a local vision model: llama.cpp's multimodal library (mtmd) with an mmproj file.

llama-cpp-python's vision chat handlers (Llava15ChatHandler and kin) end in its completion API,
which drops control tokens, so they cannot feed the token-level loop. They are thin users of
mtmd, though, and so is this: the prompt is rendered with mtmd's media marker where each image
goes, `mtmd_tokenize` splits it into text and image chunks (adding the model's own image begin/end
tokens), text chunks are evaluated as tokens and image chunks through the projector, and
generation then continues from the filled context like any other prompt.

Image positions have no token id; they are marked -1 in the context's token list so no later
prompt can match them as a reusable prefix.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kcode.backends.base import BackendError


class VisionProjector:
    """An mtmd context for one loaded model; use it only under the engine's lock."""

    def __init__(self, lib: Any, llama: Any, mmproj: Path, n_threads: int | None) -> None:
        import llama_cpp.mtmd_cpp as mtmd
        from llama_cpp._logger import llama_log_callback

        # mtmd logs every image it encodes to stderr; send it through llama-cpp-python's own
        # log callback, which only lets errors through when the model is loaded quietly.
        mtmd.mtmd_log_set(llama_log_callback, ctypes.c_void_p(0))
        mtmd.mtmd_helper_log_set(llama_log_callback, ctypes.c_void_p(0))
        self._mtmd = mtmd
        self._lib = lib
        self._llama = llama
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        params.n_threads = n_threads or 1
        self._ctx = mtmd.mtmd_init_from_file(str(mmproj).encode(), llama.model, params)
        if not self._ctx:
            raise BackendError(
                "config",
                f"the vision projector {mmproj} could not be loaded for this model; "
                "pass the mmproj file made for it",
            )
        if not mtmd.mtmd_support_vision(self._ctx):
            self.close()
            raise BackendError("config", f"{mmproj} is not a vision projector")

    @property
    def marker(self) -> str:
        return str(self._mtmd.mtmd_default_marker().decode("utf-8"))

    def evaluate(self, prompt: str, images: Sequence[bytes], room: int) -> list[int]:
        """Fill the context with `prompt` (one marker per image); the token list to generate
        from. `room`: tokens the prompt may take at most (context minus the answer reserve)."""
        mtmd = self._mtmd
        bitmaps = []
        chunks = None
        try:
            for data in images:
                buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
                bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(self._ctx, buffer, len(data), False)
                if not bitmap:
                    raise BackendError(
                        "bad_request", "an image could not be decoded (use PNG or JPEG)"
                    )
                bitmaps.append(bitmap)
            text = mtmd.mtmd_input_text()
            encoded = prompt.encode("utf-8")
            text.text, text.text_len = encoded, len(encoded)
            text.add_special, text.parse_special = False, True
            chunks = mtmd.mtmd_input_chunks_init()
            array = (mtmd.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
            if mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(text), array, len(bitmaps)):
                raise BackendError(
                    "bad_request",
                    "the images do not match the prompt's image markers; "
                    "is the mmproj file made for this model?",
                )
            return self._evaluate_chunks(chunks, room)
        finally:
            if chunks:
                mtmd.mtmd_input_chunks_free(chunks)
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)

    def _evaluate_chunks(self, chunks: Any, room: int) -> list[int]:
        mtmd, llama = self._mtmd, self._llama
        count = mtmd.mtmd_input_chunks_size(chunks)
        total = sum(
            int(mtmd.mtmd_input_chunk_get_n_tokens(mtmd.mtmd_input_chunks_get(chunks, i)))
            for i in range(count)
        )
        if total > room:
            raise BackendError(
                "bad_request",
                f"context overflow: the prompt with its images is {total} tokens, over the "
                f"{room} the model's context has room for",
            )
        llama.reset()
        llama._ctx.kv_cache_clear()
        for i in range(count):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                n = ctypes.c_size_t()
                pointer = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                llama.eval([int(pointer[j]) for j in range(n.value)])
                continue
            start = llama.n_tokens
            n_past = self._lib.llama_pos(0)
            failed = mtmd.mtmd_helper_eval_chunk_single(
                self._ctx,
                llama._ctx.ctx,
                chunk,
                self._lib.llama_pos(start),
                self._lib.llama_seq_id(0),
                llama.n_batch,
                False,
                ctypes.byref(n_past),
            )
            if failed:
                llama.reset()
                raise BackendError("bad_request", "the model could not read an image")
            llama.input_ids[start : n_past.value] = -1
            llama.n_tokens = n_past.value
        return [int(t) for t in llama.input_ids[: llama.n_tokens]]

    def close(self) -> None:
        if self._ctx:
            self._mtmd.mtmd_free(self._ctx)
            self._ctx = None
