"""inference-thresholds: hardware-, model- and context-aware LLM inference thresholds."""

__version__ = "0.1.0"
