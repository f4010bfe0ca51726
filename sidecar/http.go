package sidecar

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sigil-dna/keysync/internal/statusapi"
)

// Handler serves /healthz (alive: always, staleness never fails it), /readyz (after the
// first complete write of the keys file, while the newest keyring read could be written,
// and while the last successful sync is not older than MaxStale), /metrics (Prometheus)
// and /status (JSON, no secrets).
func (s *Sidecar) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := s.Ready(); !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{
		MaxRequestsInFlight: MaxMetricsInFlight, Timeout: ServerWriteTimeout / 2}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(s.Status())
	})
	return mux
}

// Ready reports readiness and, when not ready, why.
func (s *Sidecar) Ready() (bool, string) {
	stale := s.staleSeconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.ready && s.writeErr != "":
		return false, "the keys file cannot be written (no keys file yet): " + s.writeErr + "\n"
	case !s.ready:
		return false, "keys file not written yet\n"
	case s.writeErr != "":
		return false, "the newest keyring read could not be written to the keys file, which holds older keys: " + s.writeErr + "\n"
	case s.cfg.MaxStale > 0 && time.Duration(stale*float64(time.Second)) > s.cfg.MaxStale:
		return false, "no successful sync (store read and keys file write) for longer than --max-stale\n"
	}
	return true, ""
}

// Status is the sidecar's view, served on /status (statusapi.Status): what the keys file
// holds, what the app confirmed holding, how the store reads go, and the settings that bound
// how fast a new document reaches this pod. `keysync status --fleet` and the gate read it.
type Status = statusapi.Status

// KeyState is one key of the keys file and its state.
type KeyState = statusapi.KeyState

// Settings are the sidecar's timing, in seconds.
type Settings = statusapi.Settings

// Status reports what the keys file holds and what the app holds.
func (s *Sidecar) Status() Status {
	stale := s.staleSeconds()
	ready, _ := s.Ready()
	now := s.cfg.Now()
	s.mu.Lock()
	st := Status{Store: s.cfg.Store.String(), Path: s.file.path, Ready: ready, WrittenAt: s.written, LastSuccess: s.lastSync,
		StaleSeconds: stale, StoreError: s.storeErr, FailingSince: s.failingSince, WriteError: s.writeErr, KeyIDs: []string{}, Keys: []KeyState{}, At: now}
	if s.current != nil {
		st.Generation, st.KeyIDs = s.current.Generation, s.current.IDs()
		for _, k := range s.current.Keys {
			st.Keys = append(st.Keys, KeyState{ID: k.ID, State: s.current.StateAt(k, now)})
		}
	}
	s.mu.Unlock()
	st.App = s.notify.App()
	if st.App.KeyIDs == nil {
		st.App.KeyIDs = []string{}
	}
	c := s.cfg
	st.Settings = Settings{Interval: c.Interval.Seconds(), Jitter: c.Jitter, BackoffCap: c.BackoffCap.Seconds(),
		ReadTimeout: ReadTimeout.Seconds(), WorstPropagation: WorstPropagation(c.Interval, c.Jitter, c.BackoffCap).Seconds(),
		MaxStale: c.MaxStale.Seconds(), Signals: s.notify.sig != nil, Confirms: s.notify.app != nil}
	return st
}
