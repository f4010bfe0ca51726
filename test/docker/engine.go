// Package docker runs a real Docker engine for the tests, on its own: dockerd (Debian's
// docker.io, extracted by test/servers/docker.sh) with a data root, an exec root, a
// socket and a managed containerd of its own, no iptables rules, no default bridge and no
// registry, so that it never touches the real node's bridge, chains or containerd; the
// base images the Dockerfile and docker-compose.yml name are made locally (images.go).
// Stop leaves nothing behind, which Leftovers checks.
package docker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sigil-dna/keysync/harness/procfs"
	"github.com/sigil-dna/keysync/harness/wait"
)

// Engine is one running dockerd.
type Engine struct {
	// Dir holds everything the engine writes: data/, exec/, docker.sock, config/.
	Dir string
	// Tools is test/servers/docker.sh's folder (bin/, cli-plugins/).
	Tools string
	// Driver is the storage driver in use (overlay2, else vfs).
	Driver string
	cmd    *exec.Cmd
	exited chan struct{} // closed once dockerd has exited and been waited for
	log    *os.File
	links  []string // network interfaces before the start
}

// Sock is the engine's socket.
func (e *Engine) Sock() string { return filepath.Join(e.Dir, "docker.sock") }

// Env is what a docker or docker compose command needs to reach this engine and find
// Compose: DOCKER_HOST, DOCKER_CONFIG (its cli-plugins), the engine's binaries first on
// PATH, and the classic builder (no buildx plugin here).
func (e *Engine) Env() []string {
	cfg := filepath.Join(e.Dir, "config")
	return append(os.Environ(), "DOCKER_HOST=unix://"+e.Sock(), "DOCKER_CONFIG="+cfg,
		"PATH="+filepath.Join(e.Tools, "bin")+":"+os.Getenv("PATH"), "DOCKER_BUILDKIT=0", "COMPOSE_BAKE=false")
}

// Start runs dockerd under dir with the tools of test/servers/docker.sh.
func Start(ctx context.Context, dir, tools string) (*Engine, error) {
	e := &Engine{Dir: dir, Tools: tools, links: interfaces()}
	for _, d := range []string{"data", "exec", "config/cli-plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.Symlink(filepath.Join(tools, "cli-plugins", "docker-compose"), filepath.Join(dir, "config", "cli-plugins", "docker-compose")); err != nil {
		return nil, err
	}
	var err error
	for _, driver := range []string{"overlay2", "vfs"} {
		if err = e.start(ctx, driver); err == nil {
			return e, nil
		}
		e.Stop()
	}
	return nil, err
}

func (e *Engine) start(ctx context.Context, driver string) error {
	log, err := os.Create(filepath.Join(e.Dir, "dockerd-"+driver+".log"))
	if err != nil {
		return err
	}
	e.log, e.Driver = log, driver
	e.cmd = exec.Command(filepath.Join(e.Tools, "bin", "dockerd"),
		"--data-root", filepath.Join(e.Dir, "data"), "--exec-root", filepath.Join(e.Dir, "exec"),
		"--host", "unix://"+e.Sock(), "--pidfile", filepath.Join(e.Dir, "docker.pid"),
		"--iptables=false", "--ip6tables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none",
		"--storage-driver", driver, "--log-level", "warn")
	e.cmd.Env = append(os.Environ(), "PATH="+filepath.Join(e.Tools, "bin")+":"+os.Getenv("PATH"))
	e.cmd.Stdout, e.cmd.Stderr = log, log
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	e.exited = make(chan struct{})
	go func() { exited <- e.cmd.Wait(); close(e.exited) }()
	client := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.Sock())
	}}}
	err = wait.Until(ctx, "dockerd ("+driver+") to answer /_ping", 60*time.Second, 200*time.Millisecond, func() error {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(log.Name())
			return wait.Stop(fmt.Errorf("dockerd exited: %v: %s", err, lastLines(b, 5)))
		default:
		}
		resp, err := client.Get("http://docker/_ping")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/_ping: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if out, err := e.Docker(ctx, "info", "--format", "{{.Driver}}"); err != nil || strings.TrimSpace(out) != driver {
		return fmt.Errorf("dockerd runs the %q storage driver, want %s: %v", strings.TrimSpace(out), driver, err)
	}
	return nil
}

// Docker runs the docker CLI against the engine and returns what it printed.
func (e *Engine) Docker(ctx context.Context, args ...string) (string, error) {
	return e.Run(ctx, "", nil, args...)
}

// Run runs the docker CLI in dir with stdin, against the engine.
func (e *Engine) Run(ctx context.Context, dir string, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.Tools, "bin", "docker"), args...)
	cmd.Dir, cmd.Env = dir, e.Env()
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, lastLines(out, 30))
	}
	return string(out), nil
}

// Stop stops dockerd (it stops its containerd and containers) and removes what it left:
// processes, mounts under Dir.
func (e *Engine) Stop() {
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	for _, pid := range procfs.Naming(e.Dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	mounts := procfs.MountsUnder(e.Dir)
	slices.Reverse(mounts)
	for _, m := range mounts {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
	if e.log != nil {
		e.log.Close()
	}
}

// Leftovers lists what a stopped engine left: processes naming Dir, mounts under it,
// bridges it made (a container's veth goes with its bridge). A test asserts it is empty.
func (e *Engine) Leftovers() []string {
	var out []string
	for _, pid := range procfs.Naming(e.Dir) {
		out = append(out, fmt.Sprintf("process %d: %s", pid, strings.Join(procfs.Cmdline(pid), " ")))
	}
	for _, m := range procfs.MountsUnder(e.Dir) {
		out = append(out, "mount "+m)
	}
	for _, l := range interfaces() {
		// The engine's own: compose's network bridges (br-ID) and a default bridge; the
		// node tests, which may run at the same time, make kstest0 and veths of their own.
		if !slices.Contains(e.links, l) && (strings.HasPrefix(l, "br-") || l == "docker0") {
			out = append(out, "network interface "+l)
		}
	}
	return out
}

func interfaces() []string {
	ifs, _ := net.Interfaces()
	var out []string
	for _, i := range ifs {
		out = append(out, i.Name)
	}
	return out
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
