# The product images, one target each (build context: the repository root, trimmed by
# Dockerfile.dockerignore to the two Python packages and pyproject.toml):
#
#   docker build --target operator   -t ghcr.io/inference-thresholds/operator:0.1.0 .
#   docker build --target node-agent -t ghcr.io/inference-thresholds/node-agent:0.1.0 .
#
# Both images share everything but the installed extra, the labels and the default
# command, so they share one Dockerfile (and its layers). PYTHON_IMAGE is any Debian-based
# image with Python >= 3.11 on PATH as `python` and the venv module; the default is the
# public image. `make demo` builds FROM a base made of Debian packages (no registry there).
#
# NVML (libnvidia-ml.so) is not in the node-agent image: the NVIDIA container runtime
# injects the host driver's copy when NVIDIA_VISIBLE_DEVICES is set (the Helm chart does).
# Without it the agent publishes CPU and memory labels only.
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS source
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
# pyproject.toml names README.md as the long description; its text is irrelevant inside the
# image, and leaving it out of the context means README edits do not rebuild the images.
RUN touch README.md
COPY operator/inference_thresholds operator/inference_thresholds
COPY node-agent/inference_thresholds_agent node-agent/inference_thresholds_agent

# A regular (non-editable) install of one extra, compiled ahead (the root filesystem is
# read-only in the pods). pip and setuptools are only needed to install, so they go, and so
# does the inference-thresholds-dev entry point pyproject.toml declares: its package lives
# in devtools/, outside this context, so in the image it would be a command that cannot run.
FROM source AS operator-venv
RUN /opt/venv/bin/pip install '.[operator]' \
 && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
 && rm /opt/venv/bin/inference-thresholds-dev \
 && python -m compileall -q /opt/venv/lib

FROM source AS node-agent-venv
RUN /opt/venv/bin/pip install '.[agent]' \
 && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
 && rm /opt/venv/bin/inference-thresholds-dev \
 && python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/inference-thresholds/inference-thresholds"
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# The conventional non-root user (distroless' "nonroot"). It needs a passwd entry: kopf
# names the operator after getpass.getuser(), which fails for a uid /etc/passwd lacks.
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin nonroot
# Numeric, so runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
ENTRYPOINT ["inference-thresholds"]

# The node agent (DaemonSet): kubernetes, psutil, nvidia-ml-py, prometheus-client.
FROM runtime AS node-agent
LABEL org.opencontainers.image.title="inference-thresholds-node-agent" \
      org.opencontainers.image.description="Publishes node hardware as hw.inference.dev/ labels"
COPY --from=node-agent-venv /opt/venv /opt/venv
EXPOSE 8080
CMD ["node-agent", "run"]

# The operator (last: the default target): kopf, kubernetes, prometheus-client.
FROM runtime AS operator
LABEL org.opencontainers.image.title="inference-thresholds-operator" \
      org.opencontainers.image.description="Reconciles InferenceThresholds into ConfigMaps"
COPY --from=operator-venv /opt/venv /opt/venv
EXPOSE 8080 8081
CMD ["operator", "run", "--all-namespaces"]
