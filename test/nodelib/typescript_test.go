package nodelib_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sigil-dna/keysync/test/servers"
)

// tsc compiles files against the Node library's typings under --strict, as a TypeScript
// service that depends on it would, and returns the compiler's output.
func tsc(t *testing.T, files map[string]string) (string, error) {
	t.Helper()
	bin, err := servers.TypeScript()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lib, _ := filepath.Abs("../../reload/node")
	mods := filepath.Join(dir, "node_modules")
	os.MkdirAll(filepath.Join(mods, "@sigil-dna"), 0o755)
	if err := os.Symlink(lib, filepath.Join(mods, "@sigil-dna", "keysync-reload")); err != nil {
		t.Fatal(err)
	}
	// Node's own type definitions, installed beside tsc.
	if err := os.Symlink(filepath.Join(filepath.Dir(filepath.Dir(bin)), "@types"), filepath.Join(mods, "@types")); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name, src := range files {
		os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644)
		names = append(names, name)
	}
	args := append([]string{"--strict", "--noEmit", "--module", "commonjs", "--target", "es2022", "--moduleResolution", "node10",
		"--esModuleInterop", "--types", "node", "--skipLibCheck", "false"}, names...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestTheNodeREADMECompilesUnderStrict: every TypeScript example of reload/node/README.md
// compiles with tsc --strict against the shipped typings (regression: the README's
// open(process.env.KEYSYNC_KEYS_FILE, …) passed a string | undefined).
func TestTheNodeREADMECompilesUnderStrict(t *testing.T) {
	readme, err := os.ReadFile("../../reload/node/README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```ts\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 2 {
		t.Fatalf("%d TypeScript examples in the README", len(blocks))
	}
	files := map[string]string{}
	for i, b := range blocks {
		files[filepath.Base(t.Name())+"-"+string(rune('a'+i))+".ts"] = "export {};\n" + b[1]
	}
	if out, err := tsc(t, files); err != nil {
		t.Fatalf("tsc --strict: %v\n%s", err, out)
	}
}

// TestTheTypingsMatchWhatTheModuleAllows: `new Keyring(…)` threw at run time while the
// typings declared a constructible class (regression); handles come from open().
func TestTheTypingsMatchWhatTheModuleAllows(t *testing.T) {
	out, err := tsc(t, map[string]string{"construct.ts": `import { Keyring } from '@sigil-dna/keysync-reload';
export const k = new Keyring('/keys/keys.json');
`})
	if err == nil || !strings.Contains(out, "TS2673") {
		t.Fatalf("constructing a Keyring compiled: %v\n%s", err, out)
	}
}
