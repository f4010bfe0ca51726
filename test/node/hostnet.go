package node

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// The host state a node changes beyond its folder, restored by Stop: sysctls, the
// iptables chains the kubelet, kube-proxy and the CNI plugins create, containerd's
// run-time folders.
var (
	sysctls      = []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/conf/all/route_localnet"}
	chainPrefix  = []string{"KUBE-", "CNI-"}
	iptablesCmds = []string{"iptables", "ip6tables"}
	runFolders   = []string{"/run/containerd/s", "/run/containerd/runc/k8s.io", "/run/containerd/runc", "/run/containerd"}
)

type hostState struct {
	sysctls map[string]string
	absent  []string // run folders that did not exist before
}

func saveHost() (*hostState, error) {
	h := &hostState{sysctls: map[string]string{}}
	for _, p := range sysctls {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		h.sysctls[p] = strings.TrimSpace(string(b))
	}
	for _, d := range runFolders {
		if _, err := os.Stat(d); os.IsNotExist(err) {
			h.absent = append(h.absent, d)
		}
	}
	return h, nil
}

func (h *hostState) restore() []error {
	var errs []error
	for p, v := range h.sysctls {
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	for _, cmd := range iptablesCmds {
		if err := removeChains(cmd); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range runFolders { // deepest first; only what was not there, only if empty
		for _, a := range h.absent {
			if a == d {
				_ = os.Remove(d)
			}
		}
	}
	return errs
}

// chains lists, per table, the chains of cmd-save whose names start with a node prefix,
// and the rules of other chains that jump to them.
func chains(cmd string) (own map[string][]string, jumps map[string][][]string, err error) {
	out, err := exec.Command(cmd + "-save").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("%s-save: %w", cmd, err)
	}
	own, jumps = map[string][]string{}, map[string][][]string{}
	table := ""
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			if name := strings.Fields(line[1:])[0]; nodeChain(name) {
				own[table] = append(own[table], name)
			}
		case strings.HasPrefix(line, "-A "):
			args := splitRule(line[3:])
			if len(args) > 0 && !nodeChain(args[0]) {
				for i, a := range args {
					if (a == "-j" || a == "-g") && i+1 < len(args) && nodeChain(args[i+1]) {
						jumps[table] = append(jumps[table], args)
					}
				}
			}
		}
	}
	return own, jumps, nil
}

func removeChains(cmd string) error {
	own, jumps, err := chains(cmd)
	if err != nil {
		return err
	}
	for table, rules := range jumps {
		for _, r := range rules {
			if err := run(cmd, append([]string{"-t", table, "-D"}, r...)...); err != nil {
				return err
			}
		}
	}
	for table, names := range own {
		for _, n := range names {
			if err := run(cmd, "-t", table, "-F", n); err != nil {
				return err
			}
		}
		for _, n := range names {
			if err := run(cmd, "-t", table, "-X", n); err != nil {
				return err
			}
		}
	}
	return nil
}

func nodeChain(name string) bool {
	for _, p := range chainPrefix {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// splitRule splits an iptables-save rule into arguments, honouring double quotes.
func splitRule(s string) []string {
	var args []string
	var cur strings.Builder
	quoted, seen := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			quoted, seen = !quoted, true
		case c == ' ' && !quoted:
			if cur.Len() > 0 || seen {
				args = append(args, cur.String())
				cur.Reset()
				seen = false
			}
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 || seen {
		args = append(args, cur.String())
	}
	return args
}

// hostLeftovers lists the node chains still in the host's tables.
func hostLeftovers() []string {
	var out []string
	for _, cmd := range iptablesCmds {
		own, _, err := chains(cmd)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		for table, names := range own {
			for _, n := range names {
				out = append(out, fmt.Sprintf("%s chain %s in table %s", cmd, n, table))
			}
		}
	}
	return out
}
