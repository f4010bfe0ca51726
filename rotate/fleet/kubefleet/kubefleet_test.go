package kubefleet_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/rotate/fleet/kubefleet"
)

// The source on a real kube-apiserver, with the shipped Role, is tested end to end in
// test/e2e (kubefleet_test.go); these are what parsing refuses and accepts.

func TestParseRefuses(t *testing.T) {
	for raw, want := range map[string]string{
		"k8s://sigil":                          "a label selector is required",
		"k8s://sigil?selector=":                "a label selector is required",
		"k8s://?selector=app=x":                "want k8s://NAMESPACE?selector=LABELS",
		"k8s://sigil?selector=app=x&port=http": `port "http" is not a port number`,
		"k8s://sigil?selector=app=x&selectr=y": `unknown parameter "selectr"`,
		"k8s://sigil?selector=app%3D%3Dx%3D":   "is not a label selector",
	} {
		if _, err := kubefleet.Parse(raw, kubefleet.Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", raw, err, want)
		}
	}
}

// TestAKubernetesSourceMayNameAContext: one rotation can gate on several clusters, each
// through its kubeconfig context.
func TestAKubernetesSourceMayNameAContext(t *testing.T) {
	var asked []string
	o := kubefleet.Options{Client: func(ctx string) (*rest.Config, error) {
		asked = append(asked, ctx)
		return &rest.Config{Host: "https://127.0.0.1:1"}, nil
	}}
	for _, raw := range []string{"k8s://sigil?selector=app=x&context=eu-west-1", "k8s://sigil?selector=app=x"} {
		if _, err := kubefleet.Parse(raw, o); err != nil {
			t.Fatal(err)
		}
	}
	if len(asked) != 2 || asked[0] != "eu-west-1" || asked[1] != "" {
		t.Fatalf("contexts asked for: %q", asked)
	}
}

// TestFleetParsesKubernetesSourcesThroughTheHook: ParseSource hands k8s:// to the parser
// it is given and returns its source.
func TestFleetParsesKubernetesSourcesThroughTheHook(t *testing.T) {
	o := fleet.SourceOptions{Kube: func(raw string) (fleet.Source, error) {
		return kubefleet.Parse(raw, kubefleet.Options{Client: func(string) (*rest.Config, error) { return &rest.Config{Host: "https://127.0.0.1:1"}, nil }})
	}}
	src, err := fleet.ParseSource("k8s://sigil?selector=app=x&port=9200", o)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := src.(*kubefleet.Source)
	if !ok || k.Namespace != "sigil" || k.Port != 9200 || k.Container != kubefleet.DefaultContainer {
		t.Fatalf("source = %#v", src)
	}
}

// stalledAPIServer accepts connections and never answers: an API server that stops
// answering mid-rotation (no server obtainable here stalls on demand, hence this socket).
func stalledAPIServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// TestAStalledAPIServerNeverHoldsTheGatePastItsDeadline: the listing had no timeout, and
// `rotate --confirm-fleet` hung for more than 100 s with --confirm-timeout 10s (prove
// first). The check and the wait end at the gate's deadline with the listing named.
func TestAStalledAPIServerNeverHoldsTheGatePastItsDeadline(t *testing.T) {
	addr := stalledAPIServer(t)
	src, err := kubefleet.Parse("k8s://sigil?selector=app=x", kubefleet.Options{Client: func(string) (*rest.Config, error) {
		return &rest.Config{Host: "https://" + addr, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	g := &fleet.Gate{Sources: []fleet.Source{src}, Poll: 50 * time.Millisecond, Timeout: 300 * time.Millisecond}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // only so that a regression fails instead of hanging
	defer cancel()
	if _, err := g.Check(ctx); err == nil || !strings.Contains(err.Error(), "listing pods") || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("check: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the check ran until the test's own limit")
	}
	if _, err := g.Wait(ctx, "0123456789abcdef", time.Now()); !errors.Is(err, fleet.ErrNotConverged) || !strings.Contains(err.Error(), "listing pods") {
		t.Fatalf("wait: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the wait ran until the test's own limit")
	}
}
