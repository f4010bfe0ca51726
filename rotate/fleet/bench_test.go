package fleet_test

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/sidecar"
	"github.com/sigil-dna/keysync/sidecar/sidecartest"
	"github.com/sigil-dna/keysync/store/file"
	"github.com/sigil-dna/keysync/store/storetest"
)

// BenchmarkCollect is the gate's cost against fleet size: one round asking N members,
// each a status server of its own on loopback (in-process for the large sizes; the
// handler is a real sidecar's), at the default concurrency.
//
//	go test -run '^$' -bench Collect -benchtime 10x ./rotate/fleet/
func BenchmarkCollect(b *testing.B) {
	primary := filepath.Join(b.TempDir(), "keys.json")
	st, _ := file.New(primary, keyring.Options{})
	storetest.Rotate(b, st, keyring.Options{})
	sc := sidecartest.Run(b, sidecar.Config{Store: st, OutDir: b.TempDir(), Interval: time.Hour, ConfirmURL: "http://127.0.0.1:1/status"})
	for _, n := range []int{20, 200, 1000} {
		b.Run(fmt.Sprint(n, " members"), func(b *testing.B) {
			urls := make([]string, n)
			for i := range urls {
				srv := httptest.NewServer(sc.Handler())
				b.Cleanup(srv.Close)
				urls[i] = srv.URL
			}
			src, err := fleet.ParseSource(strings.Join(urls, ","), fleet.SourceOptions{})
			if err != nil {
				b.Fatal(err)
			}
			g := &fleet.Gate{Sources: []fleet.Source{src}, Client: fleet.NewClient(0, 10*time.Second)}
			b.ResetTimer()
			for b.Loop() {
				r, err := g.Round(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				for _, o := range r.Observations {
					if o.Err != nil {
						b.Fatal(o.Err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/round")
		})
	}
}
