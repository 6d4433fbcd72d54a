"""A local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager).

Built from Go modules by ``hack/controlplane/build.sh``; used by the test suite and by
``inference-thresholds dev-cluster``. Modules: ``binaries`` (locate/build), ``pki``
(certificates and keys; needs the ``devcluster`` extra), ``processes`` (start/stop without
orphans), ``cluster`` (``LocalCluster``), ``access`` (``ClusterAccess`` for tests and tools).
"""
