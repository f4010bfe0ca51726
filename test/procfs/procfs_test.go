package procfs

import (
	"os"
	"testing"
)

func TestThisProcess(t *testing.T) {
	rss, err := RSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("RSS of this test binary: %d, %v", rss, err)
	}
	f, _ := os.Open(os.DevNull)
	defer f.Close()
	if n, err := OpenFiles(os.Getpid()); err != nil || n < 4 {
		t.Fatalf("open files of this process (stdin, stdout, stderr, %s): %d, %v", os.DevNull, n, err)
	}
	if _, err := RSS(1 << 30); err == nil {
		t.Fatal("RSS of a pid that cannot exist succeeded")
	}
}
