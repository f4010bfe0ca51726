// Package kubefleet is the k8s:// fleet: the pods of a namespace that match a label
// selector, found through the Kubernetes API. It is a package of its own so that a keysync
// built without the Kubernetes client (a slim flavor) links none of it.
package kubefleet

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"

	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/store/kube"
)

// ClientFunc returns the client configuration for a kubeconfig context ("" for the
// default).
type ClientFunc func(context string) (*rest.Config, error)

// Options reach the cluster a k8s:// fleet names.
type Options struct {
	// Kubeconfig is the kubeconfig file; empty: in-cluster config in a pod, else
	// $KUBECONFIG or ~/.kube/config.
	Kubeconfig string
	// Client, when set, makes the client configuration instead (tests).
	Client ClientFunc
}

// DefaultContainer is the sidecar's container name in the shipped manifests.
const DefaultContainer = "keysync"

// Source is the pods of a namespace that match a label selector. Listing them needs only
// `list` on pods.
type Source struct {
	Namespace, Selector, Container, Context string
	Port                                    int
	client                                  *kube.Core
	raw                                     string
}

var _ fleet.Source = (*Source)(nil)

// Parse reads k8s://NAMESPACE?selector=LABELS[&port=9102][&container=keysync][&context=CTX]
// and makes its client; nothing is contacted.
func Parse(raw string, o Options) (*Source, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("fleet %q: %w", raw, err)
	}
	q, err := fleet.Query(raw, u, "selector", "port", "container", "context")
	if err != nil {
		return nil, err
	}
	k := &Source{Namespace: u.Host, Selector: q.Get("selector"), Container: q.Get("container"), Context: q.Get("context"), Port: fleet.DefaultPort, raw: raw}
	switch {
	case k.Namespace == "" || (u.Path != "" && u.Path != "/"):
		return nil, fmt.Errorf("fleet %q: want k8s://NAMESPACE?selector=LABELS, for example k8s://sigil?selector=app.kubernetes.io/name=sigil-app", raw)
	case k.Selector == "":
		return nil, fmt.Errorf("fleet %q: a label selector is required (selector=…): an empty one would gate on every pod of the namespace", raw)
	}
	sel, err := labels.Parse(k.Selector)
	if err != nil || sel.Empty() {
		return nil, fmt.Errorf("fleet %q: selector %q is not a label selector: %v", raw, k.Selector, err)
	}
	if p := q.Get("port"); p != "" {
		if k.Port, err = fleet.ParsePort(raw, p); err != nil {
			return nil, err
		}
	}
	if k.Container == "" {
		k.Container = DefaultContainer
	}
	mk := o.Client
	if mk == nil {
		mk = func(c string) (*rest.Config, error) { return kube.RESTConfig(o.Kubeconfig, c) }
	}
	rc, err := mk(k.Context)
	if err != nil {
		return nil, fmt.Errorf("fleet %q: %w", raw, err)
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "keysync"
	rc.Timeout = ListTimeout
	if k.client, err = kube.NewCore(rc); err != nil {
		return nil, fmt.Errorf("fleet %q: %w", raw, err)
	}
	return k, nil
}

func (k *Source) String() string { return k.raw }

// ListTimeout bounds one listing of the pods: an API server that stops answering never
// holds a rotation past it (the gate's own deadline bounds it too).
const ListTimeout = 10 * time.Second

// Members implements Source: every pod the selector matches. The API is authoritative: a
// pod it no longer lists is gone. A pod is skipped (listed, not waited for) only when it
// can no longer receive traffic or has never held keys: terminating, finished, or its
// sidecar has never run (its keys file was never written; it reads the store when it
// starts). A pod whose sidecar has run but is not running now (a crash loop, an OOM kill)
// is lagging: its app may still verify with its old keys file, so the gate waits for it.
// A pod without the sidecar container is Foreign.
func (k *Source) Members(ctx context.Context) ([]fleet.Member, error) {
	lctx, cancel := context.WithTimeout(ctx, ListTimeout)
	defer cancel()
	pods, err := k.client.ListPods(lctx, k.Namespace, k.Selector)
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	out := make([]fleet.Member, 0, len(pods.Items))
	for _, p := range pods.Items {
		m := fleet.Member{Name: p.Namespace + "/" + p.Name, Authoritative: true}
		if k.Context != "" {
			m.Name = k.Context + "/" + m.Name
		}
		cs, declared := k.sidecar(&p)
		switch {
		case p.DeletionTimestamp != nil:
			m.Skip = "terminating"
		case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
			m.Skip = "finished (" + string(p.Status.Phase) + ")"
		case !declared:
			m.Skip, m.Foreign = "no container "+k.Container+" in the pod", true
		case neverRan(cs):
			m.Skip = "sidecar container " + k.Container + " has never run (no keys file yet; it reads the store when it starts)"
		case cs.State.Running == nil:
			m.Lag = "sidecar container " + k.Container + " is not running (" + notRunning(cs) + "); its app may still verify with its old keys file"
		case p.Status.PodIP == "":
			m.Lag = "no pod IP"
		default:
			m.URL = "http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(k.Port))
		}
		out = append(out, m)
	}
	return out, nil
}

// sidecar finds the sidecar among the init containers (a native sidecar) and the
// containers, in the spec (declared) and in the status (nil: no status yet).
func (k *Source) sidecar(p *corev1.Pod) (cs *corev1.ContainerStatus, declared bool) {
	for _, c := range append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
		declared = declared || c.Name == k.Container
	}
	for _, st := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if st.Name == k.Container {
			return &st, declared
		}
	}
	return nil, declared
}

// neverRan: the container has no status, or waits for its first start.
func neverRan(cs *corev1.ContainerStatus) bool {
	return cs == nil || (cs.RestartCount == 0 && cs.State.Running == nil && cs.State.Terminated == nil && cs.LastTerminationState.Terminated == nil)
}

// notRunning says why a container that has run is not running, as the kubelet reports
// it: "CrashLoopBackOff, last exit OOMKilled (137), 4 restarts".
func notRunning(cs *corev1.ContainerStatus) string {
	var parts []string
	switch {
	case cs.State.Waiting != nil:
		parts = append(parts, orUnknown(cs.State.Waiting.Reason, "waiting"))
	case cs.State.Terminated != nil:
		parts = append(parts, fmt.Sprintf("terminated: %s (%d)", orUnknown(cs.State.Terminated.Reason, "exited"), cs.State.Terminated.ExitCode))
	}
	if t := cs.LastTerminationState.Terminated; t != nil && cs.State.Terminated == nil {
		parts = append(parts, fmt.Sprintf("last exit %s (%d)", orUnknown(t.Reason, "exited"), t.ExitCode))
	}
	if cs.RestartCount > 0 {
		parts = append(parts, fmt.Sprintf("%d restarts", cs.RestartCount))
	}
	return fleet.Clean(strings.Join(parts, ", "))
}

func orUnknown(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
