// Command kube is a multi-call binary (in the spirit of the old hyperkube)
// holding kube-apiserver, kube-scheduler, kube-controller-manager, kubectl,
// kubelet and kube-proxy from one Kubernetes release, so that the linker runs once instead of four
// times. It is built by hack/build for the local test control plane.
//
// The component is picked by the basename of argv[0] (symlinks named
// kube-apiserver, kube-scheduler, kube-controller-manager, kubectl, kubelet,
// kube-proxy), or, when
// called as "kube", by the first argument: `kube kubectl get nodes`.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	_ "time/tzdata" // for timeZone support in CronJob, as the upstream mains do

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go prometheus plugins
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric registration

	_ "k8s.io/client-go/plugin/pkg/client/auth" // kubectl auth plugins
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"

	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

var commands = map[string]func() int{
	"kube-apiserver": func() int {
		return cli.Run(apiserver.NewAPIServerCommand())
	},
	"kube-controller-manager": func() int {
		return cli.Run(controllermanager.NewControllerManagerCommand())
	},
	"kube-scheduler": func() int {
		return cli.Run(scheduler.NewSchedulerCommand())
	},
	"kubelet": func() int {
		return cli.Run(kubelet.NewKubeletCommand())
	},
	"kube-proxy": func() int {
		return cli.Run(proxy.NewProxyCommand())
	},
	"kubectl": func() int {
		command := kubectlcmd.NewDefaultKubectlCommand()
		if err := cli.RunNoErrOutput(command); err != nil {
			kubectlutil.CheckErr(err) // prints and exits non-zero
		}
		return 0
	},
}

func names() string {
	var n []string
	for k := range commands {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

func main() {
	name := filepath.Base(os.Args[0])
	run, ok := commands[name]
	if !ok {
		if len(os.Args) < 2 {
			fmt.Fprintf(os.Stderr, "usage: %s COMMAND [ARGS...]\ncommands: %s\n", name, names())
			os.Exit(2)
		}
		run, ok = commands[os.Args[1]]
		if !ok {
			fmt.Fprintf(os.Stderr, "%s: unknown command %q; commands: %s\n", name, os.Args[1], names())
			os.Exit(2)
		}
		// Shift so that the component sees itself as argv[0]; cobra and
		// kubectl's plugin handler read os.Args.
		os.Args = os.Args[1:]
	}
	os.Exit(run())
}
