package gcpsm_test

import (
	"testing"

	"github.com/sigil-dna/keysync/store/gcpsm/gcpsmtest"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/gcpfake"
)

func TestContract(t *testing.T) {
	f, _ := gcpfake.Start(t)
	storetest.Run(t, gcpsmtest.Backend(f))
}
