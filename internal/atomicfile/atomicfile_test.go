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

func TestOverwriteFileReplacesASymlinkWithoutFollowingIt(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("theirs"), 0o600)
	path := filepath.Join(dir, "keys.json")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := OverwriteFile(path, []byte("ours"), 0o440); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o440 {
		t.Fatalf("path is %v (%v), want a regular 0440 file", fi.Mode(), err)
	}
	if got, _ := os.ReadFile(path); string(got) != "ours" {
		t.Fatalf("path holds %q", got)
	}
	if got, _ := os.ReadFile(target); string(got) != "theirs" {
		t.Fatalf("the link's target was written: %q", got)
	}
}
