package procfs

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestThisProcess(t *testing.T) {
	rss, err := RSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("RSS of this test binary: %d, %v", rss, err)
	}
	f, _ := os.Open(os.DevNull)
	defer f.Close()
	if n, err := OpenFiles(os.Getpid()); err != nil || n < 4 {
		t.Fatalf("open files of this process (stdin, stdout, stderr, %s): %d, %v", os.DevNull, n, err)
	}
	if _, err := RSS(1 << 30); err == nil {
		t.Fatal("RSS of a pid that cannot exist succeeded")
	}
}

// TestAChildProcess: a real child (sleep) is found by its arguments, named, listed among
// this process's children, and its CPU time and smaps read; once it is gone nothing is.
func TestAChildProcess(t *testing.T) {
	cmd := exec.Command("sleep", "30.5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill() })
	// Until the child has exec'd, it is a copy of this process.
	for deadline := time.Now().Add(10 * time.Second); (Comm(pid) != "sleep" || len(Cmdline(pid)) != 2) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if args := Cmdline(pid); !slices.Equal(args, []string{"sleep", "30.5"}) {
		t.Errorf("Cmdline = %q", args)
	}
	if c := Comm(pid); c != "sleep" {
		t.Errorf("Comm = %q", c)
	}
	if !slices.Contains(Children(os.Getpid()), pid) {
		t.Errorf("Children of this process %v lack %d", Children(os.Getpid()), pid)
	}
	if got := Find(func(_ int, args []string) bool { return slices.Contains(args, "30.5") }); !slices.Equal(got, []int{pid}) {
		t.Errorf("Find = %v, want [%d]", got, pid)
	}
	if got := Naming("30.5"); !slices.Equal(got, []int{pid}) {
		t.Errorf("Naming = %v, want [%d]", got, pid)
	}
	if m := MountsUnder("/proc"); !slices.Contains(m, "/proc") {
		t.Errorf("MountsUnder(/proc) = %v, lacks /proc itself", m)
	}
	if _, err := CPUTime(pid); err != nil {
		t.Error(err)
	}
	if _, err := CPUPercent(pid); err != nil {
		t.Error(err)
	}
	if m, err := SmapsRollup(pid); err != nil || m["Rss"] <= 0 {
		t.Errorf("SmapsRollup = %v, %v", m, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if Cmdline(pid) != nil || Comm(pid) != "" {
		t.Error("a process that is gone still has a command line")
	}
}
