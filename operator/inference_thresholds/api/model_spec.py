"""What model a deployment serves: a catalog preset and/or explicit architecture.

Every field is bounded (the CRD carries the limits, so the apiserver refuses the rest):
the limits sit far above any published architecture, each with the fact it rests on.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from .base import WireModel


class Runtime(StrEnum):
    BITNET_CPP = "bitnet.cpp"
    LLAMA_CPP = "llama.cpp"
    VLLM = "vllm"
    TENSORRT_LLM = "tensorrt-llm"
    GPT_FAST = "gpt-fast"
    OTHER = "other"


class ModelSpec(WireModel):
    """Explicit fields win over the preset's values."""

    preset: str | None = Field(
        None,
        max_length=128,
        description="Catalog preset, e.g. bitnet-b1.58-2b-4t, llama-3.1-8b, qwen2.5-7b.",
    )
    name: str | None = Field(None, max_length=253, description="Display name.")
    parameters_billion: float | None = Field(
        None, gt=0, le=10000, description="Total parameters, in billions."
    )
    active_parameters_billion: float | None = Field(
        None, gt=0, le=10000, description="Parameters used per token (MoE), in billions."
    )
    # Published maxima: 126 layers (Llama 3.1 405B), 128 KV heads, head dim 256, hidden
    # size 25,600, vocabulary 256k, context 10M tokens; the bounds are ~40-100x those.
    layers: int | None = Field(None, ge=1, le=10_000, description="Transformer layers.")
    kv_heads: int | None = Field(None, ge=1, le=10_000, description="Key/value heads (GQA).")
    head_dim: int | None = Field(
        None, ge=1, le=65_536, description="Dimension of one attention head."
    )
    hidden_size: int | None = Field(
        None, ge=1, le=1_000_000, description="Model (embedding) dimension."
    )
    vocab_size: int | None = Field(None, ge=1, le=100_000_000, description="Vocabulary size.")
    context_length: int | None = Field(
        None, ge=1, le=1_000_000_000, description="Maximum context length, tokens."
    )
    weight_bits: float | None = Field(
        None,
        ge=1,
        le=32,
        description="Bits per weight of the transformer body: 1.58-bit ternary kernels store "
        "2 (I2_S, TL1) or ~1.67 (TL2); Q4_0 4.5; Q8_0 8.5; FP16/BF16 16.",
    )
    embedding_bits: float | None = Field(
        None, ge=1, le=32, description="Bits per weight of the embedding and output head."
    )
    tied_embeddings: bool | None = Field(
        None, description="Whether the output head shares the embedding matrix."
    )
    kv_cache_bits: float | None = Field(None, ge=1, le=32, description="Bits per KV-cache element.")
    runtime: Runtime | None = Field(None, description="Inference runtime serving the model.")
