"""A local Kubernetes cluster: etcd, kube-apiserver, kube-controller-manager, and optionally
kube-scheduler with a real node (``inference_thresholds_dev.node``).

Built from Go modules by ``hack/controlplane/build.sh``; used by the test suite, benchmarks,
``make demo`` and ``inference-thresholds-dev dev-cluster``. Modules: ``binaries``
(locate/build), ``pki`` (certificates and keys), ``processes`` (start/stop without orphans),
``cluster`` (``LocalCluster``), ``access`` (``ClusterAccess`` for tests and tools).
"""
