package awsssm_test

import (
	"testing"

	"github.com/sigil-dna/keysync/store/awsssm/awsssmtest"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/awsfake"
)

// TestContract runs on the kumo emulator and on the fake, which alone keeps parameter
// history (plain values) and can throttle.
func TestContract(t *testing.T) {
	t.Run("kumo", func(t *testing.T) { storetest.Run(t, awsssmtest.Backend(awsfake.Kumo(), nil)) })
	t.Run("fake", func(t *testing.T) {
		f := awsfake.StartT(t)
		storetest.Run(t, awsssmtest.Backend(f.AWS(), f))
	})
}
