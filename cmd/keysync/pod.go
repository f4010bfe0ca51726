package main

import (
	"context"
	"io"
	"slices"

	"github.com/sigil-dna/keysync/internal/pod"
)

// runPod is the hidden `keysync pod APP... --- SIDECAR...` used by the demo and the tests.
func runPod(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
	i := slices.Index(args, pod.Separator)
	if i < 0 {
		return pod.Run(ctx, nil, nil, stdout, stderr)
	}
	return pod.Run(ctx, args[:i], args[i+1:], stdout, stderr)
}
