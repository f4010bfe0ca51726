package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate/fleet"
)

// memberRow is one member in `keysync status --fleet`.
type memberRow struct {
	Member         string   `json:"member"`
	URL            string   `json:"url,omitempty"`
	Skipped        string   `json:"skipped,omitempty"`
	Error          string   `json:"error,omitempty"`
	Ready          bool     `json:"ready"`
	FileGeneration int64    `json:"file_generation"`
	AppGeneration  int64    `json:"app_generation"`
	AppConfirmed   bool     `json:"app_confirmed"`
	Held           []string `json:"held,omitempty"`
	Pending        []string `json:"pending,omitempty"`
	Current        []string `json:"current,omitempty"`
	Previous       []string `json:"previous,omitempty"`
	StaleSeconds   float64  `json:"stale_seconds"`
	StoreError     string   `json:"store_error,omitempty"`
	SignalError    string   `json:"signal_error,omitempty"`
	WriteError     string   `json:"write_error,omitempty"`
	ReloadSeconds  float64  `json:"last_reload_seconds,omitempty"`
	ClockOffsetMs  int64    `json:"clock_offset_ms"`
}

// fleetStatus is the whole answer of `keysync status --fleet -o json`.
type fleetStatus struct {
	At      time.Time    `json:"at"`
	Store   *storeStatus `json:"store,omitempty"`
	Members []memberRow  `json:"members"`
	Summary fleetSummary `json:"summary"`
}

type fleetSummary struct {
	Members   int `json:"members"`
	Answered  int `json:"answered"`
	Ready     int `json:"ready"`
	Confirmed int `json:"confirmed"`
	Skipped   int `json:"skipped"`
	// What fails, named apart: reading the store, writing the keys file, signalling the app.
	StoreFailing  int `json:"store_failing"`
	WriteFailing  int `json:"write_failing"`
	SignalFailing int `json:"signal_failing"`
	// Generations counts members per app-confirmed generation.
	Generations map[int64]int `json:"generations"`
}

func showFleet(ctx context.Context, srcs []fleet.Source, concurrency int, store *storeStatus, output string, w io.Writer) (*fleetStatus, error) {
	g := &fleet.Gate{Sources: srcs, Client: fleet.NewClient(concurrency, 0)}
	ctx, cancel := context.WithTimeout(ctx, fleet.DefaultTimeout)
	defer cancel()
	r, err := g.Round(ctx)
	if err != nil {
		return nil, err
	}
	fs := &fleetStatus{At: r.At.UTC(), Store: store, Members: []memberRow{}, Summary: fleetSummary{Generations: map[int64]int{}}}
	for _, o := range r.Observations {
		row := memberRow{Member: o.Member.Name, URL: o.Member.URL, Skipped: o.Member.Skip}
		fs.Summary.Members++
		switch {
		case o.Member.Skip != "":
			fs.Summary.Skipped++
		case o.Member.Lag != "":
			row.Error = o.Member.Lag
		case o.Err != nil:
			row.Error = o.Err.Error()
		default:
			st := o.Status
			fs.Summary.Answered++
			row.Ready, row.FileGeneration, row.AppGeneration, row.AppConfirmed = st.Ready, st.Generation, st.App.Generation, st.App.Confirmed
			row.StaleSeconds, row.StoreError, row.ReloadSeconds = st.StaleSeconds, st.StoreError, st.App.ReloadSeconds
			row.SignalError, row.WriteError = st.App.SignalError, st.WriteError
			row.ClockOffsetMs = o.Offset.Milliseconds()
			for _, k := range st.Keys {
				switch k.State {
				case keyring.StateHeld:
					row.Held = append(row.Held, k.ID)
				case keyring.StatePending:
					row.Pending = append(row.Pending, k.ID)
				case keyring.StateCurrent:
					row.Current = append(row.Current, k.ID)
				case keyring.StatePrevious:
					row.Previous = append(row.Previous, k.ID)
				}
			}
			if st.Ready {
				fs.Summary.Ready++
			}
			if st.App.Confirmed {
				fs.Summary.Confirmed++
			}
			if st.StoreError != "" {
				fs.Summary.StoreFailing++
			}
			if st.WriteError != "" {
				fs.Summary.WriteFailing++
			}
			if st.App.SignalError != "" {
				fs.Summary.SignalFailing++
			}
			fs.Summary.Generations[st.App.Generation]++
		}
		fs.Members = append(fs.Members, row)
	}
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return fs, enc.Encode(fs)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tREADY\tFILE GEN\tAPP GEN\tHELD\tPENDING\tCURRENT\tPREVIOUS\tSTALE\tLAST RELOAD\tNOTE")
	for _, m := range fs.Members {
		if m.Skipped != "" || m.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t%s\n", m.Member, firstNonEmpty(m.Skipped, m.Error))
			continue
		}
		note := firstNonEmpty(m.StoreError, m.WriteError, m.SignalError)
		if note == "" && !m.AppConfirmed {
			note = "app not confirmed"
		}
		app := fmt.Sprint(m.AppGeneration)
		if !m.AppConfirmed {
			app += "*"
		}
		fmt.Fprintf(tw, "%s\t%v\t%d\t%s\t%s\t%s\t%s\t%s\t%.0fs\t%s\t%s\n", m.Member, m.Ready, m.FileGeneration, app,
			ids(m.Held), ids(m.Pending), ids(m.Current), ids(m.Previous), m.StaleSeconds, reload(m.ReloadSeconds), note)
	}
	if err := tw.Flush(); err != nil {
		return fs, err
	}
	s := fs.Summary
	var gens []string
	for g, n := range s.Generations {
		gens = append(gens, fmt.Sprintf("%d×gen %d", n, g))
	}
	fmt.Fprintf(w, "%d members: %d answered, %d ready, %d apps confirmed, %d skipped; apps at %s\n",
		s.Members, s.Answered, s.Ready, s.Confirmed, s.Skipped, strings.Join(gens, ", "))
	for _, f := range []struct {
		n    int
		what string
	}{{s.StoreFailing, "failing to read the store"}, {s.WriteFailing, "failing to write the keys file"}, {s.SignalFailing, "failing to signal their app"}} {
		if f.n > 0 {
			fmt.Fprintf(w, "%d %s\n", f.n, f.what)
		}
	}
	return fs, nil
}

func ids(v []string) string {
	if len(v) == 0 {
		return "-"
	}
	return strings.Join(v, ",")
}

func reload(sec float64) string {
	if sec <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fms", sec*1000)
}
