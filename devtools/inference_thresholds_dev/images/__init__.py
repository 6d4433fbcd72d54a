"""Container images built here, without a registry (podman, a Debian base, OCI archives).

Modules: ``context`` (what a build context sends; its digest is the cache key),
``podman`` (podman with private storage; the Debian base image), ``build`` (``build_image``
for any Dockerfile + context; the project's operator and node-agent images), ``pause``
(the pod sandbox image from Kubernetes' pause.c).
"""
