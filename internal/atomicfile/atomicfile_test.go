package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileReplacesAndSetsMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keys.json")
	for _, content := range []string{"one", "two"} {
		if err := WriteFile(p, []byte(content), 0o440); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v", got, err)
		}
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o440 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestWriteFileRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	os.WriteFile(target, []byte("keep"), 0o600)
	p := filepath.Join(dir, "keys.json")
	os.Symlink(target, p)
	err := WriteFile(p, []byte("new"), 0o440)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("err = %v", err)
	}
	if got, _ := os.ReadFile(target); string(got) != "keep" {
		t.Fatal("target changed")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("temp file left: %v", entries)
	}
}

func TestWriteFileMissingDirectoryLeavesNothing(t *testing.T) {
	err := WriteFile(filepath.Join(t.TempDir(), "gone", "keys.json"), []byte("x"), 0o440)
	if err == nil || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("err = %v", err)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keys.json")
	os.WriteFile(p, []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, ".keys.json.tmp-123"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, ".other.tmp-1"), nil, 0o600)
	n, err := RemoveStale(p)
	if err != nil || n != 1 {
		t.Fatalf("removed %d, %v", n, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("%v", entries)
	}
}
