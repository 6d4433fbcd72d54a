"""A real Kubernetes node on this machine: containerd + runc and a kubelet, on loopback.

Modules: ``containerd`` (configuration, ctr), ``kubelet`` (configuration, argv), ``host``
(what the node touches outside its directory, and its cleanup), ``node`` (``RealNode``,
started by ``cluster.LocalCluster(node=True)``).
"""
