package file_test

import (
	"testing"

	"github.com/sigil-dna/keysync/store/file/filetest"
	"github.com/sigil-dna/keysync/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, filetest.Backend())
}
