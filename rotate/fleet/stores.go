package fleet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// follows reports whether the member's sidecar reads one of the rotation's stores.
func (g *Gate) follows(st *Status) bool {
	if len(g.Stores) == 0 || unreadableFile(st) {
		return true
	}
	for _, s := range g.Stores {
		if SameStore(st.Store, s) {
			return true
		}
	}
	return false
}

func (g *Gate) foreignStore(st *Status) string {
	return fmt.Sprintf("its sidecar follows %s, not this rotation's store (%s): another fleet's sidecar? narrow the fleet, or give both the same store URL",
		st.Store, strings.Join(g.Stores, ", "))
}

// SameStore reports whether two stores' names (store.Store.String(), as a sidecar's
// /status says it) name the same store: equal up to the address of the server (" at
// ADDR": a rotator and a pod may reach one Vault at two addresses), or two files that
// are the same file here.
func SameStore(a, b string) bool {
	a, _, _ = strings.Cut(a, " at ")
	b, _, _ = strings.Cut(b, " at ")
	if a == b {
		return true
	}
	pa, oka := strings.CutPrefix(a, "file://")
	pb, okb := strings.CutPrefix(b, "file://")
	if !oka || !okb {
		return false
	}
	fa, err := os.Stat(pa)
	if err != nil {
		return false
	}
	fb, err := os.Stat(pb)
	return err == nil && os.SameFile(fa, fb)
}

// unreadableFile reports a member that cannot read a file store whose file does not
// exist here (a dangling link, a file gone): which file it is cannot be told, and it
// cannot hold any key, so it is a laggard named by its store error, not a foreign
// member that stops the rotation before the write.
func unreadableFile(st *Status) bool {
	p, ok := strings.CutPrefix(st.Store, "file://")
	if !ok || st.StoreError == "" {
		return false
	}
	_, err := os.Stat(p)
	return errors.Is(err, fs.ErrNotExist)
}
