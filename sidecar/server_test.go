package sidecar

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/file"
	"github.com/sigil-dna/keysync/store/storetest"
)

// serving starts a sidecar's Serve on a loopback listener (the attacks of issue 28 at full
// size are test/attack's benchmark; these are the limits one by one).
func serving(t *testing.T) (*Sidecar, string) {
	t.Helper()
	dir := t.TempDir()
	st, _ := file.New(filepath.Join(dir, "store.json"), store.PlainOptions{})
	storetest.Rotate(t, st, keyring.Options{})
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o700)
	s, err := New(Config{Store: st, OutDir: out, Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s, ln.Addr().String()
}

func dialFrom(t *testing.T, addr string, from net.IP) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ask sends one request on c and returns the answer's status code (0: the connection
// was closed without an answer).
func ask(t *testing.T, c net.Conn, path string) int {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestAHeaderBeyondTheLimitIsRefusedWithoutBeingRead(t *testing.T) {
	_, addr := serving(t)
	c := dialFrom(t, addr, net.IPv4(127, 0, 0, 1))
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /status HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", MaxHeaderBytes+8<<10))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("%v %v", resp, err)
	}
}

// TestOneSourceCannotHoldMoreThanItsShareOfConnections: 3000 idle keep-alives from one
// pod held 3012 fds until the sidecar could no longer open its store (prove first).
func TestOneSourceCannotHoldMoreThanItsShareOfConnections(t *testing.T) {
	s, addr := serving(t)
	hostile := net.IPv4(127, 0, 0, 1)
	for i := range MaxConnsPerSource {
		if code := ask(t, dialFrom(t, addr, hostile), "/healthz"); code != http.StatusOK {
			t.Fatalf("connection %d: %d", i, code)
		}
	}
	// Kept alive, all of them: the next one from that address is closed at accept.
	if code := ask(t, dialFrom(t, addr, hostile), "/healthz"); code != 0 {
		t.Fatalf("connection %d of one source answered %d", MaxConnsPerSource+1, code)
	}
	if n := testutil.ToFloat64(s.metrics.connsRefused.WithLabelValues("per_source")); n != 1 {
		t.Fatalf("refused per source: %v", n)
	}
	// Another pod (the rotator, Prometheus) is still served.
	if code := ask(t, dialFrom(t, addr, net.IPv4(127, 0, 0, 2)), "/status"); code != http.StatusOK {
		t.Fatalf("another source: %d", code)
	}
	if n := testutil.ToFloat64(s.metrics.connsOpen); n != MaxConnsPerSource+1 {
		t.Fatalf("open connections: %v", n)
	}
}
