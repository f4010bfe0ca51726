package kube_test

import (
	"testing"

	"github.com/sigil-dna/keysync/store/kube"
	"github.com/sigil-dna/keysync/store/kube/kubetest"
	"github.com/sigil-dna/keysync/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, kubetest.Backend(kube.Cluster()))
}
