package awssm_test

import (
	"testing"

	"github.com/sigil-dna/keysync/store/awssm/awssmtest"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/awsfake"
)

// TestContract runs on the fake: kumo cannot move staging labels, which every write does
// (TestReadsOnKumoAndTheFake holds the read cases to kumo as well).
func TestContract(t *testing.T) {
	storetest.Run(t, awssmtest.Backend(awsfake.StartT(t)))
}
