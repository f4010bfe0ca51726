package demo

import (
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/rotate"
)

// TestTheTerminalTableIsRedrawnInPlace: on a terminal each second's table replaces the
// last one (cursor up over it, clear), and a rotation's line takes its place above the next.
func TestTheTerminalTableIsRedrawnInPlace(t *testing.T) {
	var b strings.Builder
	d := &display{w: &b, tty: true}
	pods := []podView{{index: 0, gen: "2", signs: "3f9c1a2b", pending: "–", previous: "aa11bb22", reload: "4.1ms", verified: 10}}
	d.tick(time.Second, pods, "pods 1")
	d.rotated(1, &rotate.Result{NewKeyID: "0123456789abcdef", Generation: 3, SigningFrom: time.Now()})
	d.tick(2*time.Second, pods, "pods 1")
	out := b.String()
	if strings.Count(out, "\x1b[3A\x1b[J") != 1 || !strings.Contains(out, "\x1b[3A\x1b[Jrotation 1: key 01234567… staged") {
		t.Fatalf("the table was not redrawn in place:\n%q", out)
	}
	if !strings.Contains(out, "pod 0  2    3f9c1a2b    –        aa11bb22  4.1ms") {
		t.Fatalf("table:\n%s", out)
	}
	var plain strings.Builder
	p := &display{w: &plain}
	p.tick(time.Second, pods, "pods 1")
	if strings.Contains(plain.String(), "\x1b") || strings.Contains(plain.String(), "POD") {
		t.Fatalf("piped output is not plain lines: %q", plain.String())
	}
}
