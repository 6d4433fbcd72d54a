// Command kube is a multi-call wrapper around the upstream kube-apiserver,
// kube-controller-manager, kube-scheduler and kubelet commands, built from Go modules
// because no release binaries can be downloaded here. The first argument picks the
// component. "cri-reset" (ours) stops and removes every pod sandbox of a CRI runtime, so a
// local node's teardown leaves no containers, mounts or network namespaces behind.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	criclient "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kube kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|cri-reset [flags]")
		os.Exit(2)
	}
	var cmd *cobra.Command
	switch os.Args[1] {
	case "kube-apiserver":
		cmd = apiserver.NewAPIServerCommand()
	case "kube-controller-manager":
		cmd = controllermanager.NewControllerManagerCommand()
	case "kube-scheduler":
		cmd = scheduler.NewSchedulerCommand()
	case "kubelet":
		cmd = kubelet.NewKubeletCommand(context.Background())
	case "cri-reset":
		cmd = newCRIResetCommand()
	default:
		fmt.Fprintf(os.Stderr, "unknown component %q\n", os.Args[1])
		os.Exit(2)
	}
	cmd.SetArgs(os.Args[2:])
	os.Exit(cli.Run(cmd))
}

// newCRIResetCommand stops and removes every pod sandbox (and so every container) the
// runtime at --endpoint knows. Stopping a sandbox through CRI is what releases its network
// namespace and mounts; killing the runtime's processes would leave them behind.
func newCRIResetCommand() *cobra.Command {
	var endpoint string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:          "cri-reset --endpoint unix:///path/to/containerd.sock",
		Short:        "stop and remove every pod sandbox of a CRI runtime",
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger := klog.Background()
			runtime, err := criclient.NewRemoteRuntimeService(endpoint, timeout, nil, &logger)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			sandboxes, err := runtime.ListPodSandbox(ctx, nil)
			if err != nil {
				return err
			}
			for _, sandbox := range sandboxes {
				if err := runtime.StopPodSandbox(ctx, sandbox.Id); err != nil {
					return fmt.Errorf("stop sandbox %s: %w", sandbox.Id, err)
				}
				if err := runtime.RemovePodSandbox(ctx, sandbox.Id); err != nil {
					return fmt.Errorf("remove sandbox %s: %w", sandbox.Id, err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d pod sandboxes\n", len(sandboxes))
			return nil
		},
	}
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "CRI endpoint (unix:///...)")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "overall timeout")
	_ = cmd.MarkFlagRequired("endpoint")
	return cmd
}
