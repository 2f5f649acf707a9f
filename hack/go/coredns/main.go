// Command coredns is CoreDNS with only the plugins the local cluster's DNS
// needs (a bind address, cluster names from the API server, health and readiness, a cache,
// errors and query logs), so the build pulls no cloud SDKs. It is built by
// hack/build and run by hack/cluster as the cluster DNS of
// real nodes.
package main

import (
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
