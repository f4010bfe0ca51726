package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sigil-dna/keysync/harness/procfs"
)

// Stop tears the cluster down and leaves nothing behind: every pod sandbox removed through
// the CRI (so that the CNI plugins remove their addresses and rules), every component
// stopped, kube-proxy's rules removed, no mount under Dir, no bridge, ip_forward as it was.
// It returns what it could not clean.
func (c *Cluster) Stop() error {
	var errs []error
	if c.Client != nil {
		// Pods first, while the kubelet runs: it stops them as users would see it.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		nss, err := c.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err == nil {
			zero := int64(0)
			for _, ns := range nss.Items {
				_ = c.Client.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
			}
		}
		cancel()
	}
	c.stopProc("kubelet", &errs)
	if c.running("containerd") {
		if err := removeSandboxes(c.Socket); err != nil {
			errs = append(errs, fmt.Errorf("removing pod sandboxes: %w", err))
		}
	}
	if c.running("kube-proxy") {
		c.stopProc("kube-proxy", &errs)
		if out, err := exec.Command(filepath.Join(c.opts.Bin, "kube-proxy"), "--cleanup", "--proxy-mode", "iptables").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("kube-proxy --cleanup: %w: %s", err, out))
		}
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.stopProc(c.procs[i].name, &errs)
	}
	// Shims outlive containerd; after the sandboxes are gone they have nothing to hold.
	killMatching(c.opts.Dir)
	if err := unmountUnder(c.opts.Dir); err != nil {
		errs = append(errs, err)
	}
	if c.bridge {
		if err := run("ip", "link", "del", Bridge); err != nil {
			errs = append(errs, err)
		}
	}
	if c.host != nil {
		errs = append(errs, c.host.restore()...)
	}
	return errors.Join(errs...)
}

func (c *Cluster) running(name string) bool {
	for _, p := range c.procs {
		if p.name == name {
			select {
			case err := <-p.done:
				p.done <- err
				return false
			default:
				return true
			}
		}
	}
	return false
}

// stopProc sends SIGTERM, waits up to 20 s, then kills.
func (c *Cluster) stopProc(name string, errs *[]error) {
	for _, p := range c.procs {
		if p.name != name {
			continue
		}
		select {
		case err := <-p.done:
			p.done <- err
			continue
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			p.done <- <-p.done
			*errs = append(*errs, fmt.Errorf("%s did not stop on SIGTERM within 20 s", name))
		}
	}
}

// killMatching kills every process whose command line names dir (containerd's shims).
func killMatching(dir string) {
	for _, pid := range procfs.Naming(dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Leftovers lists what a stopped cluster left behind: processes naming dir, mounts under
// it, the bridge, iptables chains of the kubelet, kube-proxy or CNI. A test asserts it is
// empty.
func Leftovers(dir string) []string {
	var out []string
	for _, pid := range procfs.Naming(dir) {
		out = append(out, fmt.Sprintf("process %d: %s", pid, strings.Join(procfs.Cmdline(pid), " ")))
	}
	for _, m := range procfs.MountsUnder(dir) {
		out = append(out, "mount "+m)
	}
	if _, err := net.InterfaceByName(Bridge); err == nil {
		out = append(out, "bridge "+Bridge)
	}
	return append(out, hostLeftovers()...)
}

func unmountUnder(dir string) error {
	for range 5 {
		ms := procfs.MountsUnder(dir)
		if len(ms) == 0 {
			return nil
		}
		slices.Reverse(ms) // deepest (latest) first
		for _, m := range ms {
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
	if ms := procfs.MountsUnder(dir); len(ms) > 0 {
		return fmt.Errorf("still mounted under %s: %v", dir, ms)
	}
	return nil
}
