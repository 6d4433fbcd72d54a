"""GGUF files of real architectures with RANDOM weights, for speed measurements only.

Tokens/s and time to first token depend on tensor shapes and formats, not on weight
values, so a file with a real architecture's shapes and random weights runs exactly as
fast as the released model, without a model hub. The text such a model generates is
noise: use it with ``ignore_eos`` and a fixed ``n_predict``. Shapes are those published
in each model's ``config.json`` (sources next to each preset).

The F16 file is written with PyPI ``gguf`` (GGUFWriter, streamed tensor by tensor) and a
minimal SentencePiece-style vocabulary (``<unk>``, ``<s>``, ``</s>``, 256 byte tokens,
fillers); Q8_0/Q4_0 come from ``llama-quantize``. Files are cached by content key under
``<cache>/models``. The engine's :class:`ModelSpec` is read back from the written file.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference_thresholds.api import ModelSpec, Runtime

GENERATOR_VERSION = 1  # bump when the written files change
FORMATS = ("F16", "Q8_0", "Q4_0")
_POOL_SIZE = 1 << 22  # random values tiled into every tensor (values do not affect speed)
_INIT_STD = 0.02


@dataclass(frozen=True)
class Architecture:
    """The shape facts of a decoder, as in its Hugging Face config.json."""

    name: str
    arch: str  # llama.cpp architecture: llama | qwen2
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    tied_embeddings: bool
    rope_theta: float
    qkv_bias: bool = False
    context: int = 2048
    source: str = ""

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def tensors(self) -> Iterator[tuple[str, tuple[int, ...], bool]]:
        """(name, numpy shape (rows = output features), is a matrix) in file order."""
        h, kv = self.hidden, self.kv_heads * self.head_dim
        yield "token_embd.weight", (self.vocab, h), True
        for i in range(self.layers):
            p = f"blk.{i}."
            yield p + "attn_norm.weight", (h,), False
            yield p + "attn_q.weight", (h, h), True
            yield p + "attn_k.weight", (kv, h), True
            yield p + "attn_v.weight", (kv, h), True
            if self.qkv_bias:
                yield p + "attn_q.bias", (h,), False
                yield p + "attn_k.bias", (kv,), False
                yield p + "attn_v.bias", (kv,), False
            yield p + "attn_output.weight", (h, h), True
            yield p + "ffn_norm.weight", (h,), False
            yield p + "ffn_gate.weight", (self.ffn, h), True
            yield p + "ffn_up.weight", (self.ffn, h), True
            yield p + "ffn_down.weight", (h, self.ffn), True
        yield "output_norm.weight", (h,), False
        if not self.tied_embeddings:
            yield "output.weight", (self.vocab, h), True

    @property
    def parameters(self) -> int:
        return sum(int(np.prod(shape)) for _, shape, _ in self.tensors())

    def key(self) -> str:
        text = json.dumps({**asdict(self), "generator": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "smollm2-135m", "llama", 576, 30, 9, 3, 1536, 49152, True, 100000.0,
            source="https://huggingface.co/HuggingFaceTB/SmolLM2-135M/blob/main/config.json",
        ),
        Architecture(
            "smollm2-360m", "llama", 960, 32, 15, 5, 2560, 49152, True, 100000.0,
            source="https://huggingface.co/HuggingFaceTB/SmolLM2-360M/blob/main/config.json",
        ),
        Architecture(
            "qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, True, 1000000.0,
            qkv_bias=True,
            source="https://huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json",
        ),
        Architecture(
            "tinyllama-1.1b", "llama", 2048, 22, 32, 4, 5632, 32000, False, 10000.0,
            source="https://huggingface.co/TinyLlama/TinyLlama-1.1B-Chat-v1.0/blob/main/config.json",
        ),
    )
}  # fmt: skip


def _vocabulary(size: int) -> tuple[list[str], list[float], list[int]]:
    """A minimal SentencePiece vocabulary: specials, byte fallback, then fillers."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256  # UNKNOWN, CONTROL, CONTROL, BYTE (gguf TokenType)
    fillers = size - len(tokens)
    if fillers < 0:
        raise ValueError(f"vocab {size} is smaller than the {len(tokens)} fixed tokens")
    tokens += [f"\u2581t{i}" for i in range(fillers)]
    types += [1] * fillers  # NORMAL
    scores = [0.0] * 259 + [-float(i) for i in range(fillers)]
    return tokens, scores, types


def write_f16(arch: Architecture, path: Path, seed: int = 0) -> None:
    """Write ``arch`` as an F16 GGUF with random weights (norms 1.0, F32)."""
    import gguf  # dev extra; imported here so the module's specs load without it

    rng = np.random.default_rng(seed)
    pool = (rng.standard_normal(_POOL_SIZE, dtype=np.float32) * _INIT_STD).astype(np.float16)
    writer = gguf.GGUFWriter(str(path), arch.arch)
    writer.add_name(f"{arch.name} (random weights)")
    writer.add_description("Random weights with a real architecture's shapes; speed tests only")
    writer.add_context_length(arch.context)
    writer.add_embedding_length(arch.hidden)
    writer.add_block_count(arch.layers)
    writer.add_feed_forward_length(arch.ffn)
    writer.add_head_count(arch.heads)
    writer.add_head_count_kv(arch.kv_heads)
    writer.add_rope_dimension_count(arch.head_dim)
    writer.add_rope_freq_base(arch.rope_theta)
    writer.add_layer_norm_rms_eps(1e-6 if arch.arch == "qwen2" else 1e-5)
    writer.add_vocab_size(arch.vocab)
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    tokens, scores, types = _vocabulary(arch.vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)

    plan = list(arch.tensors())
    for name, shape, matrix in plan:
        dtype = np.dtype(np.float16 if matrix else np.float32)
        writer.add_tensor_info(name, shape, dtype, int(np.prod(shape)) * dtype.itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for name, shape, matrix in plan:
        if matrix:
            start = int(rng.integers(0, _POOL_SIZE))
            data = np.resize(np.roll(pool, -start), shape)
        elif name.endswith(".bias"):
            data = np.zeros(shape, dtype=np.float32)
        else:
            data = np.ones(shape, dtype=np.float32)
        writer.write_tensor_data(data)
    writer.close()


def cache_dir() -> Path:
    from .build import cache_root

    return cache_root() / "models"


def model_file(arch: Architecture, fmt: str, tools: Path, directory: Path | None = None) -> Path:
    """The GGUF of ``arch`` in ``fmt`` (F16, Q8_0, Q4_0), generating it when absent."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{arch.name}-random-{arch.key()}"
    f16 = directory / f"{stem}-F16.gguf"
    if not f16.exists():
        partial = f16.with_suffix(".partial")
        write_f16(arch, partial)
        partial.rename(f16)  # complete files only under the final name
    if fmt == "F16":
        return f16
    out = directory / f"{stem}-{fmt}.gguf"
    if not out.exists():
        partial = out.with_suffix(".partial")
        subprocess.run(
            [str(tools / "llama-quantize"), str(f16), str(partial), fmt],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        partial.rename(out)
    return out


def tensor_bits(path: Path) -> dict[str, tuple[int, int]]:
    """name -> (elements, bytes) of every tensor in a GGUF file."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {t.name: (int(t.n_elements), int(t.n_bytes)) for t in reader.tensors}


def model_spec(arch: Architecture, path: Path) -> ModelSpec:
    """What a user would write for this file: shapes, and bits per weight read from it."""
    sizes = tensor_bits(path)
    head_name = "token_embd.weight" if arch.tied_embeddings else "output.weight"
    head_elems, head_bytes = sizes[head_name]
    body = [
        (n, b)
        for name, (n, b) in sizes.items()
        if name not in ("token_embd.weight", "output.weight")
    ]
    body_elems = sum(n for n, _ in body)
    body_bytes = sum(b for _, b in body)
    spec: dict[str, Any] = {
        "name": f"{arch.name} (random weights)",
        "parametersBillion": arch.parameters / 1e9,
        "layers": arch.layers,
        "hiddenSize": arch.hidden,
        "vocabSize": arch.vocab,
        "kvHeads": arch.kv_heads,
        "headDim": arch.head_dim,
        "tiedEmbeddings": arch.tied_embeddings,
        "weightBits": round(body_bytes * 8 / body_elems, 3),
        "embeddingBits": round(head_bytes * 8 / head_elems, 3),
        "runtime": str(Runtime.LLAMA_CPP),
    }
    return ModelSpec.model_validate(spec)
