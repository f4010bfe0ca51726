// Package dirwatch turns fsnotify's events on a directory into a signal per change of one
// name in it: a watch on the directory sees atomic renames and symlink swaps that a
// watch on the file itself would miss.
package dirwatch

import (
	"context"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// Changes reads w's events until ctx ends or w is closed, and sends on the returned
// channel (capacity one, never blocking: changes in a burst coalesce) for each event on a
// file whose base name is name. The channel is closed, and w with it, when it stops.
func Changes(ctx context.Context, w *fsnotify.Watcher, name string) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Base(ev.Name) != name {
					continue
				}
				select {
				case out <- struct{}{}:
				default:
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return out
}
