package sidecar

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /healthz (alive: always, staleness never fails it), /readyz (after the
// first complete write of the keys file, and while not stale beyond MaxStale), /metrics
// (Prometheus) and /status (JSON, no secrets).
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
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
	case !s.ready:
		return false, "keys file not written yet\n"
	case s.cfg.MaxStale > 0 && time.Duration(stale*float64(time.Second)) > s.cfg.MaxStale:
		return false, "store not read successfully for longer than --max-stale\n"
	}
	return true, ""
}

// Status is the sidecar's view, served on /status.
type Status struct {
	Store        string    `json:"store"`
	Path         string    `json:"path"`
	Ready        bool      `json:"ready"`
	Generation   int64     `json:"generation"`
	KeyIDs       []string  `json:"key_ids"`
	WrittenAt    time.Time `json:"written_at"`
	LastSuccess  time.Time `json:"last_success"`
	StaleSeconds float64   `json:"stale_seconds"`
}

// Status reports what the keys file holds.
func (s *Sidecar) Status() Status {
	stale := s.staleSeconds()
	ready, _ := s.Ready()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Store: s.cfg.Store.String(), Path: s.file.path, Ready: ready, WrittenAt: s.written, LastSuccess: s.lastSuccess, StaleSeconds: stale}
	if s.current != nil {
		st.Generation, st.KeyIDs = s.current.Generation, s.current.IDs()
	}
	return st
}
