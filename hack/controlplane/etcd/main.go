// Command etcd wraps the upstream etcd 3.6 server entry point. Debian's etcd
// (3.4.23) is too old for kube-apiserver >= 1.31, so it is built from modules.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
