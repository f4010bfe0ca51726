package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sigil-dna/keysync/harness/podfleet"
	"github.com/sigil-dna/keysync/internal/statusapi"
	"github.com/sigil-dna/keysync/rotate"
)

// display shows the demo's progress. On a terminal: one short line per rotation, and under
// them a table of the pods redrawn in place each second — which key each signs with, which
// it holds pending or previous, its last reload, the events it verified and refused.
// Elsewhere (piped, a log): the same as plain lines, one per rotation and one a second.
type display struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	drawn int // lines of the table on screen, redrawn in place
}

// rotated reports one rotation in one short line.
func (d *display) rotated(n int, res *rotate.Result) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clear()
	fmt.Fprintf(d.w, "rotation %d: key %s… staged, every pod signs with it from %s (generation %d)\n",
		n, short(res.NewKeyID), res.SigningFrom.Local().Format("15:04:05.000"), res.Generation)
}

// tick shows the fleet: a table on a terminal, one plain line otherwise.
func (d *display) tick(elapsed time.Duration, pods []podView, totals string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.tty {
		fmt.Fprintf(d.w, "demo %4.0fs  %s\n", elapsed.Seconds(), totals)
		return
	}
	d.clear()
	var b strings.Builder
	fmt.Fprintf(&b, "demo %4.0fs  %s\n", elapsed.Seconds(), totals)
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tGEN\tSIGNS WITH\tPENDING\tPREVIOUS\tLAST RELOAD\tVERIFIED\tFAILED")
	for _, p := range pods {
		fmt.Fprintf(tw, "pod %d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", p.index, p.gen, p.signs, p.pending, p.previous, p.reload, p.verified, p.failed)
	}
	tw.Flush()
	out := b.String()
	fmt.Fprint(d.w, out)
	d.drawn = strings.Count(out, "\n")
}

// clear removes the table drawn last, so what follows takes its place.
func (d *display) clear() {
	if d.tty && d.drawn > 0 {
		fmt.Fprintf(d.w, "\x1b[%dA\x1b[J", d.drawn)
		d.drawn = 0
	}
}

func short(id string) string { return id[:min(8, len(id))] }

// podView is one row of the table.
type podView struct {
	index                                 int
	gen, signs, pending, previous, reload string
	verified, failed                      int64
}

var viewClient = &http.Client{Timeout: time.Second}

// views asks every pod's sidecar what its keys file and its app hold.
func views(ctx context.Context, fl *podfleet.Fleet, tr *podfleet.Traffic) []podView {
	counts := tr.PerPod()
	out := make([]podView, len(fl.Pods))
	var wg sync.WaitGroup
	for i, p := range fl.Pods {
		out[i] = podView{index: p.Index, gen: "–", signs: "–", pending: "–", previous: "–", reload: "–",
			verified: counts[p.Index].Verified, failed: counts[p.Index].Failed}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := sidecarStatus(ctx, p.SidecarURL)
			if err != nil {
				return
			}
			v := &out[i]
			v.gen = fmt.Sprint(st.App.Generation)
			var pending, previous []string
			for _, k := range st.Keys {
				switch k.State {
				case "current":
					v.signs = short(k.ID)
				case "pending", "held":
					pending = append(pending, short(k.ID))
				case "previous":
					previous = append(previous, short(k.ID))
				}
			}
			if len(pending) > 0 {
				v.pending = strings.Join(pending, ",")
			}
			if len(previous) > 0 {
				v.previous = strings.Join(previous, ",")
			}
			if st.App.ReloadSeconds > 0 {
				v.reload = fmt.Sprintf("%.1fms", st.App.ReloadSeconds*1000)
			}
		}()
	}
	wg.Wait()
	return out
}

func sidecarStatus(ctx context.Context, url string) (*statusapi.Status, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/status", nil)
	resp, err := viewClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st statusapi.Status
	return &st, json.NewDecoder(resp.Body).Decode(&st)
}

// ms shows a latency in milliseconds, or "–" before any was measured.
func ms(v float64, measured bool) string {
	if !measured {
		return "–"
	}
	return fmt.Sprintf("%.0fms", v)
}
