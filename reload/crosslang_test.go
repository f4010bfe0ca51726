package reload

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
)

// TestCrossLanguage: a payload signed by Go verifies in Node and the reverse, for every
// key state (pending, current, previous, expired), through a real node process.
func TestCrossLanguage(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("precondition: node is not installed (Node 18+ is needed for reload/node)")
	}
	// previous a, current b, pending c at t1; then c current; then a expired.
	r, _ := keyring.Stage(nil, t0, secret(1), keyring.Options{})
	r, _ = keyring.Stage(r, t0.Add(time.Hour), secret(2), keyring.Options{})
	t1 := t0.Add(time.Hour + 2*time.Minute)
	r, _ = keyring.Stage(r, t1, secret(3), keyring.Options{})
	doc := encode(t, r)
	s := keyring.NewSigner(r)
	instants := map[string]time.Time{
		"b current, c pending, a previous": t1.Add(time.Second),
		"c current":                        t1.Add(keyring.DefaultActivationDelay),
		"a expired":                        r.Keys[0].NotAfter,
		"a and b expired":                  r.Keys[1].NotAfter.Add(time.Millisecond),
	}
	payloads := [][]byte{nil, []byte(`{"type":"spiral"}`), bytes.Repeat([]byte{0xff, 0}, 600)}
	type item struct {
		At        string `json:"at"`
		Payload   []byte `json:"payload"`
		Signature string `json:"signature,omitempty"`
	}
	var req struct {
		Document string `json:"document"`
		Verify   []item `json:"verify"`
		Sign     []item `json:"sign"`
	}
	req.Document = string(doc)
	var wantVerify []string
	for _, at := range instants {
		for _, p := range payloads {
			req.Sign = append(req.Sign, item{At: at.Format(time.RFC3339Nano), Payload: p})
			// A signature by every key, whatever its state at this instant, keyed and bare.
			for _, k := range r.Keys {
				one := keyring.NewSigner(&keyring.Keyring{Generation: 1, RotatedAt: t0, Keys: []keyring.Key{{ID: k.ID, Secret: k.Secret, NotBefore: t0}}})
				keyed, _ := one.Sign(at, p)
				legacy, _ := one.SignLegacy(at, p)
				for _, sig := range []string{keyed, legacy} {
					req.Verify = append(req.Verify, item{At: at.Format(time.RFC3339Nano), Payload: p, Signature: sig})
					wantVerify = append(wantVerify, keyring.ErrorCode(s.Verify(at, p, sig)))
				}
			}
		}
	}
	in, _ := json.Marshal(req)
	cmd := exec.Command(node, "reload/node/test/fixtures/crosslang.js")
	cmd.Dir = ".."
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var got struct {
		Verify []*string `json:"verify"`
		Sign   []struct {
			Keyed, Legacy, Error string
		} `json:"sign"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Verify) != len(wantVerify) || len(got.Sign) != len(req.Sign) {
		t.Fatalf("node answered %d/%d verifications, %d/%d signatures", len(got.Verify), len(wantVerify), len(got.Sign), len(req.Sign))
	}
	accepted, refused := 0, 0
	for i, g := range got.Verify {
		gs := ""
		if g != nil {
			gs = *g
		}
		if gs != wantVerify[i] {
			t.Errorf("Go signature %d: node says %q, Go says %q", i, gs, wantVerify[i])
		}
		if gs == "" {
			accepted++
		} else {
			refused++
		}
	}
	for i, g := range got.Sign {
		at, _ := time.Parse(time.RFC3339Nano, req.Sign[i].At)
		wantKeyed, err := s.Sign(at, req.Sign[i].Payload)
		if g.Error != keyring.ErrorCode(err) || g.Keyed != wantKeyed {
			t.Errorf("node signature %d at %s: %q %q, Go made %q", i, req.Sign[i].At, g.Keyed, g.Error, wantKeyed)
			continue
		}
		if err == nil {
			if e := s.Verify(at, req.Sign[i].Payload, g.Keyed); e != nil {
				t.Errorf("node's keyed signature does not verify in Go: %v", e)
			}
			if e := s.Verify(at, req.Sign[i].Payload, g.Legacy); e != nil {
				t.Errorf("node's legacy signature does not verify in Go: %v", e)
			}
		}
	}
	if accepted == 0 || refused == 0 {
		t.Fatalf("the cases must include both outcomes: %d accepted, %d refused", accepted, refused)
	}
	t.Logf("%d Go signatures checked in Node (%d accepted, %d refused, same as Go); %d Node signatures verified in Go", len(wantVerify), accepted, refused, len(got.Sign))
}
