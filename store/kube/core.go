package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// Core is a client of the core/v1 API group alone: the Secrets the store reads and
// writes and the Pods a k8s:// fleet lists. client-go's clientset would register every
// API group's types when the binary starts (its scheme package alone: 0.67 MB of heap
// and 14 ms), and link their clients, in a sidecar that reads one Secret
// (docs/benchmarks.md, "Sidecar footprint per build flavor").
type Core struct {
	rest *rest.RESTClient
}

var coreScheme = runtime.NewScheme()

func init() {
	if err := corev1.AddToScheme(coreScheme); err != nil {
		panic(err)
	}
	metav1.AddToGroupVersion(coreScheme, corev1.SchemeGroupVersion)
}

// NewCore builds a core/v1 client on rc; nothing is contacted.
func NewCore(rc *rest.Config) (*Core, error) {
	c := rest.CopyConfig(rc)
	gv := corev1.SchemeGroupVersion
	c.GroupVersion, c.APIPath = &gv, "/api"
	c.NegotiatedSerializer = serializer.NewCodecFactory(coreScheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	r, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	return &Core{rest: r}, nil
}

// RESTClient is the underlying client, for list-watches.
func (c *Core) RESTClient() rest.Interface { return c.rest }

// GetSecret reads one Secret.
func (c *Core) GetSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	err := c.rest.Get().Namespace(namespace).Resource("secrets").Name(name).Do(ctx).Into(out)
	return out, err
}

// CreateSecret creates a Secret.
func (c *Core) CreateSecret(ctx context.Context, sec *corev1.Secret) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	err := c.rest.Post().Namespace(sec.Namespace).Resource("secrets").Body(sec).Do(ctx).Into(out)
	return out, err
}

// UpdateSecret replaces a Secret; the server refuses it (Conflict) when its
// resourceVersion is not the current one.
func (c *Core) UpdateSecret(ctx context.Context, sec *corev1.Secret) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	err := c.rest.Put().Namespace(sec.Namespace).Resource("secrets").Name(sec.Name).Body(sec).Do(ctx).Into(out)
	return out, err
}

// ListPods lists the pods of a namespace that match a label selector.
func (c *Core) ListPods(ctx context.Context, namespace, selector string) (*corev1.PodList, error) {
	out := &corev1.PodList{}
	err := c.rest.Get().Namespace(namespace).Resource("pods").
		VersionedParams(&metav1.ListOptions{LabelSelector: selector}, metav1.ParameterCodec).Do(ctx).Into(out)
	return out, err
}

// CreateEvent creates a core/v1 Event.
func (c *Core) CreateEvent(ctx context.Context, ev *corev1.Event) (*corev1.Event, error) {
	out := &corev1.Event{}
	err := c.rest.Post().Namespace(ev.Namespace).Resource("events").Body(ev).Do(ctx).Into(out)
	return out, err
}
