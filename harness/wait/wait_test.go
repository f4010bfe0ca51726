package wait

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	n := 0
	if err := Until(context.Background(), "three calls", time.Minute, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("%v after %d calls", err, n)
	}
	gone := errors.New("the process exited")
	err := Until(context.Background(), "a process", time.Minute, time.Millisecond, func() error { return Stop(gone) })
	if !errors.Is(err, gone) || !strings.Contains(err.Error(), "waiting for a process") {
		t.Fatalf("a stopped wait: %v", err)
	}
	err = Until(context.Background(), "nothing", 20*time.Millisecond, time.Millisecond, func() error { return errors.New("still down") })
	if err == nil || !strings.Contains(err.Error(), "still down") || !strings.Contains(err.Error(), "not after 20ms") {
		t.Fatalf("a wait past its limit: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Until(ctx, "nothing", time.Minute, time.Hour, func() error { return errors.New("down") }); !errors.Is(err, context.Canceled) {
		t.Fatalf("a wait whose context ended: %v", err)
	}
}

type recorder struct{ failed string }

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestFor(t *testing.T) {
	var r recorder
	For(&r, "the impossible", 30*time.Millisecond, func() bool { return false })
	if !strings.Contains(r.failed, "the impossible") {
		t.Fatalf("For did not fail naming what it waited for: %q", r.failed)
	}
	r = recorder{}
	For(&r, "the obvious", time.Second, func() bool { return true })
	if r.failed != "" {
		t.Fatal(r.failed)
	}
}
