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
	if k.client, err = kube.NewCore(rc); err != nil {
		return nil, fmt.Errorf("fleet %q: %w", raw, err)
	}
	return k, nil
}

func (k *Source) String() string { return k.raw }

// Members implements Source: every pod the selector matches, skipped (listed, not waited
// for) when it terminates, has finished, has no IP yet, or its sidecar container has not
// started: such a pod reads the store when its sidecar starts. A pod without the sidecar
// container is Foreign.
func (k *Source) Members(ctx context.Context) ([]fleet.Member, error) {
	pods, err := k.client.ListPods(ctx, k.Namespace, k.Selector)
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	out := make([]fleet.Member, 0, len(pods.Items))
	for _, p := range pods.Items {
		m := fleet.Member{Name: p.Namespace + "/" + p.Name}
		if k.Context != "" {
			m.Name = k.Context + "/" + m.Name
		}
		started, declared := k.sidecarStarted(&p)
		switch {
		case p.DeletionTimestamp != nil:
			m.Skip = "terminating"
		case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
			m.Skip = "finished (" + string(p.Status.Phase) + ")"
		case !declared:
			m.Skip, m.Foreign = "no container "+k.Container+" in the pod", true
		case p.Status.PodIP == "":
			m.Skip = "no pod IP yet"
		case !started:
			m.Skip = "sidecar container " + k.Container + " not started yet"
		default:
			m.URL = "http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(k.Port))
		}
		out = append(out, m)
	}
	return out, nil
}

// sidecarStarted looks for the sidecar among the init containers (a native sidecar) and
// the containers, in the spec and in the status.
func (k *Source) sidecarStarted(p *corev1.Pod) (started, declared bool) {
	for _, c := range append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
		declared = declared || c.Name == k.Container
	}
	for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if cs.Name == k.Container && cs.State.Running != nil && (cs.Started == nil || *cs.Started) {
			return true, declared
		}
	}
	return false, declared
}
