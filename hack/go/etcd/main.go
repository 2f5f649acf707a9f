// Command etcd is etcd's own server main (etcdmain.Main), built from the
// published Go modules for the local test control plane (hack/build).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
