// Package kubetest is the Kubernetes store's fixture for the store contract and the
// cross-layer tests, on a real kube-apiserver with etcd (test/servers): a fresh
// namespace and Secret per fixture, reached through a proxy that can cut it.
package kubetest

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/kube"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/servers"
)

// Backend describes the Kubernetes store on k to the contract: watched, no plain-value
// history (a Secret keeps none), invalid documents and outages injectable.
func Backend(k *servers.Kube) storetest.Backend {
	return storetest.Backend{Watches: true, Open: func(t *testing.T) *storetest.Fixture { return Open(t, k) }}
}

var seq atomic.Int64

// Namespace creates a fresh namespace.
func Namespace(t *testing.T, k *servers.Kube) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%d", time.Now().UnixNano()%1e6, seq.Add(1))
	admin := kubernetes.NewForConfigOrDie(k.Config)
	if _, err := admin.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

// Open returns a fixture on a fresh Secret in a fresh namespace of k.
func Open(t *testing.T, k *servers.Kube) *storetest.Fixture {
	t.Helper()
	ns, name := Namespace(t, k), "spiral-event-secret"
	proxy := storetest.NewProxy(t, strings.Trim(strings.TrimPrefix(k.Config.Host, "https://"), "/"))
	rc := rest.CopyConfig(k.Config)
	rc.Host = "https://" + proxy.Addr()
	return &storetest.Fixture{
		Store:    New(t, k.Config, ns, name, func(c *kube.Config) { c.REST = rc }),
		URL:      "k8s://" + ns + "/" + name,
		Another:  func() store.Store { return New(t, k.Config, ns, name) },
		PutPlain: func(v string) { PutData(t, k, ns, name, kube.DefaultPlainKey, v) },
		PutRaw:   func(doc string) { PutData(t, k, ns, name, kube.DefaultKey, doc) },
		Outage:   proxy.Cut,
	}
}

// New opens the store on Secret ns/name as rc's user, with the contract's plain-value
// schedule, closed when the test ends.
func New(t *testing.T, rc *rest.Config, ns, name string, mod ...func(*kube.Config)) *kube.Store {
	t.Helper()
	cfg := kube.Config{Namespace: ns, Name: name, REST: rc, Plain: storetest.Schedule}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := kube.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// PutData makes the Secret hold only key=value, as kubectl would, as cluster admin.
func PutData(t *testing.T, k *servers.Kube, ns, name, key, value string) {
	t.Helper()
	secrets := kubernetes.NewForConfigOrDie(k.Config).CoreV1().Secrets(ns)
	sec, err := secrets.Get(t.Context(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = secrets.Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
			Data: map[string][]byte{key: []byte(value)}}, metav1.CreateOptions{})
	} else if err == nil {
		sec.Data = map[string][]byte{key: []byte(value)}
		_, err = secrets.Update(t.Context(), sec, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}
