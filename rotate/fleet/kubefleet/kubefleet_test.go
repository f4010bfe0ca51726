package kubefleet_test

import (
	"strings"
	"testing"

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
