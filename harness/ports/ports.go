// Package ports picks loopback ports for processes that are started later (the demo's
// pods, the test servers). A port from the kernel's ephemeral range, found free by
// binding ":0" and closing, can be handed to another process's ":0" bind before ours
// starts; these ports come from below that range (which starts at 32768 by default), so
// the kernel never hands them out, and each is checked free before it is returned.
package ports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
)

const (
	low  = 20000
	high = 32000
)

func free(port int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// Free returns a loopback port that nothing listens on.
func Free() (int, error) {
	for range 1000 {
		if p := low + rand.IntN(high-low); free(p) {
			return p, nil
		}
	}
	return 0, errors.New("ports: no free port found")
}

// FreePair returns a port p such that p and p+1 are both free (Vault's dev mode binds both).
func FreePair() (int, error) {
	for range 1000 {
		if p := low + rand.IntN(high-low-1); free(p) && free(p+1) {
			return p, nil
		}
	}
	return 0, errors.New("ports: no free pair of ports found")
}
