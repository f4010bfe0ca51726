package nodelib_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sigil-dna/keysync/test/servers"
)

// TestTheNodePromClientHookServesMetricsText: the Node library's registerPromClient, with a
// real prom-client (15.1.3, from test/servers/typescript.sh), exposes the same keysync series
// as keys.metricsText(), counts included, and follows the counts from scrape to scrape.
func TestTheNodePromClientHookServesMetricsText(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is needed for the Node library's tests")
	}
	tsc, err := servers.TypeScript()
	if err != nil {
		t.Fatal(err)
	}
	modules := filepath.Dir(filepath.Dir(tsc)) // .../node_modules
	lib, _ := filepath.Abs("../../reload/node")
	script := `
const fs = require('fs'), path = require('path'), crypto = require('crypto');
const client = require('prom-client');
const keysync = require(process.argv[1]); // node -e: the first argument
(async () => {
  const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'keysync-promclient-'));
  const s = crypto.randomBytes(32);
  fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({ version: 1, generation: 1, rotated_at: new Date().toISOString(),
    keys: [{ id: keysync.keyId(s), secret: s.toString('base64'), not_before: new Date(Date.now() - 60000).toISOString() }] }));
  const keys = await keysync.open(path.join(dir, 'keys.json'), { signal: null, watch: false, pollIntervalMs: 0 });
  const reg = new client.Registry();
  keysync.registerPromClient(client, keys, { registers: [reg] });
  const first = await reg.metrics();
  const sig = keys.sign('a');
  keys.verify('a', sig); keys.verify('a', sig); keys.verify('a', 'zz'); keys.verify('a', 'ks1.0000000000000000.' + '0'.repeat(64));
  process.stdout.write(first + '\n=====\n' + (await reg.metrics()) + '\n=====\n' + keys.metricsText());
  keys.close();
  fs.rmSync(dir, { recursive: true });
})().catch((e) => { console.error(e); process.exit(1); });
`
	cmd := exec.Command("node", "-e", script, lib)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	parts := strings.Split(string(out), "\n=====\n")
	if len(parts) != 3 {
		t.Fatalf("output:\n%s", out)
	}
	samples := func(text string) []string {
		var s []string
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, "keysync_app_") {
				s = append(s, l)
			}
		}
		slices.Sort(s)
		return s
	}
	hook, text := samples(parts[1]), samples(parts[2])
	if !slices.Equal(hook, text) || len(hook) < 4 {
		t.Fatalf("prom-client serves\n%s\nmetricsText gives\n%s", strings.Join(hook, "\n"), strings.Join(text, "\n"))
	}
	for _, want := range []string{`state="current",result="ok"} 2`, `result="malformed_signature"} 1`, `result="unknown_key"} 1`, `keysync_app_signatures_total{key_id=`} {
		if !strings.Contains(parts[1], want) {
			t.Errorf("no %s in\n%s", want, parts[1])
		}
	}
	if strings.Contains(parts[0], `result="ok"`) {
		t.Errorf("the first scrape, before any verification, has counts:\n%s", parts[0])
	}
}
