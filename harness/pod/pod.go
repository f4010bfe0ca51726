// Package pod runs an app and its sidecar as two processes of one "pod": restarted when
// they exit (restartPolicy: Always), stopped together on SIGTERM. Started under
// `unshare --pid --fork --mount-proc` it is PID 1 of a fresh PID namespace in which the
// sidecar signals the app exactly as in a pod with shareProcessNamespace: true.
package pod

import (
	"context"
	"fmt"
	"io"

	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Separator divides the app's command line from the sidecar's.
const Separator = "---"

// Run starts app and sidecar and restarts either when it exits, until ctx ends.
func Run(ctx context.Context, app, sidecar []string, stdout, stderr io.Writer) error {
	if len(app) == 0 || len(sidecar) == 0 {
		return fmt.Errorf("pod: an app command and a sidecar command, separated by %s, are both required", Separator)
	}
	var wg sync.WaitGroup
	for _, argv := range [][]string{sidecar, app} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			supervise(ctx, argv, stdout, stderr)
		}()
	}
	wg.Wait()
	return nil
}

func supervise(ctx context.Context, argv []string, stdout, stderr io.Writer) {
	for ctx.Err() == nil {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(stderr, "pod: starting %s: %v\n", argv[0], err)
		} else {
			done := make(chan struct{})
			go func() {
				select {
				case <-ctx.Done():
					_ = cmd.Process.Signal(syscall.SIGTERM)
				case <-done:
				}
			}()
			_ = cmd.Wait()
			close(done)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
