"""Model-side physics: bytes streamed per token, KV cache, operations, memory."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..api import DecisionSource, ModelSpec, Runtime, Workload
from .explain import DecisionLog, fmt

GB = 1e9
MIB = 1024 * 1024


@dataclass(frozen=True)
class ModelFigures:
    params: float  # total parameters
    active_params: float  # parameters touched per token (MoE: active only)
    layers: int
    weight_bits: float
    embedding_bits: float
    weight_bytes_stored: float  # bytes resident in memory
    weight_bytes_per_token: float  # bytes streamed per decode step
    kv_bytes_per_token: float  # KV cache bytes per token of context per sequence
    runtime: str
    quantized: bool
    head_params: float  # output head parameters (vocab x hidden), 0 when unknown
    body_bytes: float  # transformer-layer weights (no embedding/head), as stored
    # Input embedding + output head parameters (the head once when tied), 0 when unknown.
    embedding_params: float = 0.0


def _default_weight_bits(runtime: str) -> tuple[float, str]:
    if runtime == Runtime.BITNET_CPP:
        return 2.0, "bitnet.cpp I2_S stores ternary weights in 2 bits"
    return 16.0, "no weightBits given: FP16/BF16 assumed"


def _default_embedding_bits(weight_bits: float) -> tuple[float, str]:
    if weight_bits <= 2.5:
        return 16.0, "ternary/2-bit models keep embedding and output head in F16"
    if weight_bits < 8:
        return max(weight_bits, 6.5), "llama.cpp k-quants keep the output head at ~Q6_K (6.5 bits)"
    return weight_bits, "embedding at the body's precision"


def estimate_layers(params_billion: float) -> int:
    """Depth of a dense decoder of this size (fit to Llama/Qwen/Gemma configs)."""
    return max(12, min(128, math.floor(21 * math.pow(params_billion, 0.27) + 0.5)))


def model_figures(spec: ModelSpec, log: DecisionLog) -> ModelFigures:
    assert spec.parameters_billion is not None  # resolve_model guarantees it
    runtime = str(spec.runtime or Runtime.LLAMA_CPP)
    if spec.runtime is None:
        log.add("model.runtime", runtime, None, "estimate", "no runtime given: llama.cpp assumed")
    else:
        log.add("model.runtime", runtime, None, "input")
    params = spec.parameters_billion * GB
    active = (spec.active_parameters_billion or spec.parameters_billion) * GB
    log.add(
        "model.parameters",
        spec.parameters_billion,
        "B",
        "input",
        "total parameters"
        + (
            f"; {fmt(active / GB)} B active per token (MoE)"
            if spec.active_parameters_billion
            else ""
        ),
    )
    if spec.layers is not None:
        layers = spec.layers
        log.add("model.layers", layers, None, "input")
    else:
        layers = estimate_layers(spec.parameters_billion)
        log.add(
            "model.layers",
            layers,
            None,
            "estimate",
            f"21 x {fmt(spec.parameters_billion)}^0.27 (dense decoder depth fit)",
        )
    if spec.weight_bits is not None:
        wbits = spec.weight_bits
        log.add("model.weightBits", wbits, "bits", "input")
    else:
        wbits, why = _default_weight_bits(runtime)
        log.add("model.weightBits", wbits, "bits", "estimate", why)
    if spec.embedding_bits is not None:
        ebits = spec.embedding_bits
        log.add("model.embeddingBits", ebits, "bits", "input")
    else:
        ebits, why = _default_embedding_bits(wbits)
        log.add("model.embeddingBits", ebits, "bits", "estimate", why)

    # Split off embedding/head only when the shape is known; else all params at wbits.
    head = embed_total = 0.0
    if spec.vocab_size and spec.hidden_size:
        head = float(spec.vocab_size * spec.hidden_size)
        tied = bool(spec.tied_embeddings)
        embed_total = head if tied else 2 * head
        body = max(params - embed_total, params * 0.1)
        active_body = max(active - embed_total, active * 0.1)
        body_bytes = body * wbits / 8
        stored = body_bytes + embed_total * ebits / 8
        # Decode reads the whole body and the output head; the input embedding is a lookup.
        per_token = active_body * wbits / 8 + head * ebits / 8
        log.add(
            "decode.weightBytesPerToken",
            per_token / GB,
            "GB",
            "computed",
            f"body {fmt(active_body / GB)} B x {fmt(wbits)} bits + output head "
            f"{spec.vocab_size} x {spec.hidden_size} x {fmt(ebits)} bits",
        )
    else:
        stored = body_bytes = params * wbits / 8
        per_token = active * wbits / 8
        log.add(
            "decode.weightBytesPerToken",
            per_token / GB,
            "GB",
            "computed",
            f"{fmt(active / GB)} B params x {fmt(wbits)} bits / 8 (no vocab/hidden size: "
            "head counted at body precision)",
        )

    kv_bits = spec.kv_cache_bits or 16.0
    if spec.kv_heads and spec.head_dim:
        kv_per_token = 2 * layers * spec.kv_heads * spec.head_dim * kv_bits / 8
        kv_detail = (
            f"2 x {layers} layers x {spec.kv_heads} kv heads x {spec.head_dim} x "
            f"{fmt(kv_bits / 8)} B"
        )
        kv_source: DecisionSource = "computed"
    else:
        # Without GQA facts assume full multi-head attention of a typical width.
        hidden = spec.hidden_size or 128 * max(8, round(math.sqrt(spec.parameters_billion) * 12))
        kv_per_token = 2 * layers * hidden * kv_bits / 8
        kv_detail = f"2 x {layers} layers x hidden {hidden} x {fmt(kv_bits / 8)} B (no kvHeads)"
        kv_source = "estimate"
    log.add("memory.kvBytesPerToken", kv_per_token / 1024, "KiB", kv_source, kv_detail)
    return ModelFigures(
        params=params,
        active_params=active,
        layers=layers,
        weight_bits=wbits,
        embedding_bits=ebits,
        weight_bytes_stored=stored,
        weight_bytes_per_token=per_token,
        kv_bytes_per_token=kv_per_token,
        runtime=runtime,
        quantized=wbits < 15.5,
        head_params=head,
        body_bytes=body_bytes,
        embedding_params=embed_total,
    )


def step_bytes(fig: ModelFigures, wl: Workload) -> tuple[float, float]:
    """Bytes one decode step streams (weights + KV cache at mean context), and that context."""
    mean_ctx, _ = context_tokens(wl)
    return fig.weight_bytes_per_token + fig.kv_bytes_per_token * mean_ctx * wl.concurrency, mean_ctx


def context_tokens(workload: Workload) -> tuple[float, float]:
    """(mean context during decode, peak context) in tokens per sequence."""
    return (
        workload.prompt_tokens + workload.output_tokens / 2,
        float(workload.prompt_tokens + workload.output_tokens),
    )


def prefill_flops(fig: ModelFigures, prompt_tokens: int, hidden: int | None) -> float:
    """2 x layer params x tokens, the output head once, plus causal attention
    2 x layers x tokens^2 x width.

    The input embedding is a row lookup, and serving runtimes compute logits for the
    prompt's last token only (llama.cpp's n_outputs / inp_out_ids, vLLM without prompt
    logprobs): the head multiplies one row, not the prompt. For small models with large
    vocabularies it is a quarter of the parameters (Qwen2.5-0.5B: 136 of 494 M).
    """
    width = hidden or math.sqrt(fig.active_params / (12 * fig.layers))
    per_token = max(fig.active_params - fig.embedding_params, 0.1 * fig.active_params)
    return (
        2 * per_token * prompt_tokens
        + 2 * fig.head_params
        + 2 * fig.layers * prompt_tokens**2 * width
    )
