package ports

import (
	"net"
	"strconv"
	"testing"
)

func TestFreeIsBelowTheEphemeralRangeAndBindable(t *testing.T) {
	for range 50 {
		p, err := Free()
		if err != nil || p < low || p >= high {
			t.Fatalf("%d %v", p, err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not bindable: %v", p, err)
		}
		ln.Close()
	}
	p, err := FreePair()
	if err != nil || !free(p) || !free(p+1) {
		t.Fatalf("pair %d: %v", p, err)
	}
}

func TestAPortInUseIsNotReturned(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if free(ln.Addr().(*net.TCPAddr).Port) {
		t.Fatal("a bound port reads as free")
	}
}
