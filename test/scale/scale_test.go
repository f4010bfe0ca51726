package scale

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestScaleShort is the scale benchmark's short mode in the suite: 50 sidecars on the
// real Vault dev server. Every sidecar writes the rotation; the store sees one read per
// pod per interval at idle (jitter keeps the mean); after an outage no second carries
// more than twice the idle load (full-jitter backoff spreads the retries).
func TestScaleShort(t *testing.T) {
	srv := &Servers{}
	t.Cleanup(srv.Close)
	o := Options{Interval: time.Second, BackoffCap: 2 * time.Second, Outage: 3 * time.Second, Dir: t.TempDir()}
	const n = 50
	r, err := Run(t.Context(), srv, "vault", n, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *r)
	if r.Propagated != n {
		t.Fatalf("%d of %d sidecars wrote the rotation", r.Propagated, n)
	}
	perPod := r.IdleRPS * o.Interval.Seconds() / n
	if perPod > 1.25 || perPod < 0.5 {
		t.Errorf("idle: %.2f store reads per pod per interval, want about one", perPod)
	}
	if steady := float64(n) / o.Interval.Seconds(); float64(r.MaxAfterOutage) > 2*steady {
		t.Errorf("after the outage: %d requests in one second, more than twice the steady %.0f", r.MaxAfterOutage, steady)
	}
	if r.MaxAfterOutage == 0 {
		t.Error("no request counted after the outage")
	}
	if md := Markdown("vault", []*Result{r}, o); len(md) < 100 {
		t.Errorf("report: %q", md)
	}
	chart := filepath.Join(t.TempDir(), "scale-vault.png")
	if err := Chart("vault", []*Result{r, r}, o, chart); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(chart)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if c, err := png.DecodeConfig(f); err != nil || c.Width < 800 {
		t.Errorf("chart: %+v, %v", c, err)
	}
}
