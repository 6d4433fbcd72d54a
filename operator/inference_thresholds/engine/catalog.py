"""Built-in model presets and preset resolution.

Presets carry architecture facts (published model configs). Explicit spec fields
always win; a name that matches a preset fills only the fields left empty.
"""

from __future__ import annotations

from typing import Any

from ..api import Decision, ModelSpec, Runtime
from ..text import slug


def _p(**fields: Any) -> ModelSpec:
    return ModelSpec.model_validate(fields)


PRESETS: dict[str, ModelSpec] = {
    "bitnet-b1.58-2b-4t": _p(
        name="BitNet b1.58 2B4T",
        parameters_billion=2.41,
        layers=30,
        kv_heads=5,
        head_dim=128,
        hidden_size=2560,
        vocab_size=128256,
        context_length=4096,
        weight_bits=2.0,
        embedding_bits=16,
        tied_embeddings=True,
        runtime=Runtime.BITNET_CPP,
    ),
    "bitnet-b1.58-large": _p(
        name="BitNet b1.58 large (0.7B)",
        parameters_billion=0.73,
        layers=24,
        kv_heads=16,
        head_dim=96,
        hidden_size=1536,
        vocab_size=32002,
        context_length=2048,
        weight_bits=2.0,
        embedding_bits=16,
        tied_embeddings=False,
        runtime=Runtime.BITNET_CPP,
    ),
    "llama-2-7b": _p(
        name="Llama-2-7B",
        parameters_billion=6.74,
        layers=32,
        kv_heads=32,
        head_dim=128,
        hidden_size=4096,
        vocab_size=32000,
        context_length=4096,
        tied_embeddings=False,
    ),
    "llama-2-13b": _p(
        name="Llama-2-13B",
        parameters_billion=13.0,
        layers=40,
        kv_heads=40,
        head_dim=128,
        hidden_size=5120,
        vocab_size=32000,
        context_length=4096,
        tied_embeddings=False,
    ),
    "llama-2-70b": _p(
        name="Llama-2-70B",
        parameters_billion=68.98,
        layers=80,
        kv_heads=8,
        head_dim=128,
        hidden_size=8192,
        vocab_size=32000,
        context_length=4096,
        tied_embeddings=False,
    ),
    "llama-3.1-8b": _p(
        name="Llama-3.1-8B",
        parameters_billion=8.03,
        layers=32,
        kv_heads=8,
        head_dim=128,
        hidden_size=4096,
        vocab_size=128256,
        context_length=131072,
        tied_embeddings=False,
    ),
    "llama-3.1-70b": _p(
        name="Llama-3.1-70B",
        parameters_billion=70.55,
        layers=80,
        kv_heads=8,
        head_dim=128,
        hidden_size=8192,
        vocab_size=128256,
        context_length=131072,
        tied_embeddings=False,
    ),
    "llama-3.1-405b": _p(
        name="Llama-3.1-405B",
        parameters_billion=405.8,
        layers=126,
        kv_heads=8,
        head_dim=128,
        hidden_size=16384,
        vocab_size=128256,
        context_length=131072,
        tied_embeddings=False,
    ),
    "llama-3.2-1b": _p(
        name="Llama-3.2-1B",
        parameters_billion=1.24,
        layers=16,
        kv_heads=8,
        head_dim=64,
        hidden_size=2048,
        vocab_size=128256,
        context_length=131072,
        tied_embeddings=True,
    ),
    "llama-3.2-3b": _p(
        name="Llama-3.2-3B",
        parameters_billion=3.21,
        layers=28,
        kv_heads=8,
        head_dim=128,
        hidden_size=3072,
        vocab_size=128256,
        context_length=131072,
        tied_embeddings=True,
    ),
    "mistral-7b": _p(
        name="Mistral-7B",
        parameters_billion=7.24,
        layers=32,
        kv_heads=8,
        head_dim=128,
        hidden_size=4096,
        vocab_size=32768,
        context_length=32768,
        tied_embeddings=False,
    ),
    "mixtral-8x7b": _p(
        name="Mixtral-8x7B",
        parameters_billion=46.7,
        active_parameters_billion=12.9,
        layers=32,
        kv_heads=8,
        head_dim=128,
        hidden_size=4096,
        vocab_size=32000,
        context_length=32768,
        tied_embeddings=False,
    ),
    "qwen2.5-7b": _p(
        name="Qwen2.5-7B",
        parameters_billion=7.62,
        layers=28,
        kv_heads=4,
        head_dim=128,
        hidden_size=3584,
        vocab_size=152064,
        context_length=32768,
        tied_embeddings=False,
    ),
    "qwen2.5-72b": _p(
        name="Qwen2.5-72B",
        parameters_billion=72.7,
        layers=80,
        kv_heads=8,
        head_dim=128,
        hidden_size=8192,
        vocab_size=152064,
        context_length=32768,
        tied_embeddings=False,
    ),
    "gemma-2-2b": _p(
        name="Gemma-2-2B",
        parameters_billion=2.61,
        layers=26,
        kv_heads=4,
        head_dim=256,
        hidden_size=2304,
        vocab_size=256000,
        context_length=8192,
        tied_embeddings=True,
    ),
    "gemma-2-9b": _p(
        name="Gemma-2-9B",
        parameters_billion=9.24,
        layers=42,
        kv_heads=8,
        head_dim=256,
        hidden_size=3584,
        vocab_size=256000,
        context_length=8192,
        tied_embeddings=True,
    ),
    "phi-3-mini": _p(
        name="Phi-3-mini",
        parameters_billion=3.82,
        layers=32,
        kv_heads=32,
        head_dim=96,
        hidden_size=3072,
        vocab_size=32064,
        context_length=4096,
        tied_embeddings=False,
    ),
}

# Extra spellings people use; keys are normalised (see _slug).
_ALIASES: dict[str, str] = {
    "bitnet-2b-4t": "bitnet-b1.58-2b-4t",
    "bitnet-b1-58-2b-4t": "bitnet-b1.58-2b-4t",
    "bitnet-b1-58-large": "bitnet-b1.58-large",
    "meta-llama-3-1-8b": "llama-3.1-8b",
    "llama-3-8b": "llama-3.1-8b",
    "llama-3-70b": "llama-3.1-70b",
    "mistral-7b-v0-1": "mistral-7b",
    "qwen2-5-7b": "qwen2.5-7b",
    "qwen2-5-72b": "qwen2.5-72b",
}


class UnknownPresetError(ValueError):
    pass


_BY_SLUG: dict[str, str] = {slug(k): k for k in PRESETS} | _ALIASES


def preset_for_name(name: str) -> str | None:
    """The preset a display name denotes: an exact slug, or a slug followed by a suffix
    such as '-instruct' (never a looser match, so 'BitNet b1.58 7B' stays unmatched)."""
    wanted = slug(name)
    for key in sorted(_BY_SLUG, key=len, reverse=True):
        if wanted == key or wanted.startswith(key + "-"):
            return _BY_SLUG[key]
    return None


def resolve_model(spec: ModelSpec) -> tuple[ModelSpec, list[Decision]]:
    """Expand a preset (named or matched by display name); explicit fields win."""
    decisions: list[Decision] = []
    preset_id: str | None = None
    if spec.preset is not None:
        preset_id = _BY_SLUG.get(slug(spec.preset))
        if preset_id is None:
            raise UnknownPresetError(
                f"model.preset: unknown preset {spec.preset!r}; use one of "
                f"{', '.join(sorted(PRESETS))} or give parametersBillion and weightBits"
            )
        decisions.append(
            Decision(
                step="model.preset",
                value=preset_id,
                source="table",
                detail=f"architecture from catalog entry {preset_id}",
            )
        )
    elif spec.name is not None:
        preset_id = preset_for_name(spec.name)
        if preset_id is not None:
            decisions.append(
                Decision(
                    step="model.preset",
                    value=preset_id,
                    source="table",
                    detail=f"name {spec.name!r} matches catalog entry {preset_id}; it fills only "
                    "fields the spec leaves empty",
                )
            )
    if preset_id is None:
        if spec.parameters_billion is None:
            raise UnknownPresetError(
                "model: give a preset (e.g. llama-3.1-8b) or parametersBillion"
            )
        return spec, decisions
    base = PRESETS[preset_id].model_dump(exclude_none=True)
    explicit = spec.model_dump(exclude_none=True, exclude={"preset"})
    return ModelSpec.model_validate(base | explicit | {"preset": preset_id}), decisions
