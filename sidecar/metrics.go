package sidecar

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the sidecar's Prometheus series, on a registry of its own.
type metrics struct {
	reg           *prometheus.Registry
	syncs         *prometheus.CounterVec
	lastSuccess   prometheus.Gauge
	generation    prometheus.Gauge
	keysWritten   prometheus.Counter
	signals       *prometheus.CounterVec
	confirmations *prometheus.HistogramVec
}

func newMetrics(stale func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keysync_syncs_total", Help: "Store reads by result: ok, error (store unreachable or failing), rejected (invalid document).",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keysync_last_success_timestamp_seconds", Help: "Unix time of the last successful store read.",
		}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keysync_generation", Help: "Generation of the keyring in the keys file.",
		}),
		keysWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keysync_keys_written_total", Help: "Keys file writes (only changes are written).",
		}),
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keysync_signals_total", Help: "Signals to the app by result: sent, not_found, error.",
		}, []string{"result"}),
		confirmations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keysync_reload_confirmation_seconds",
			Help:    "Time until the app reported the written generation, from the signal or from the file write.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"from"}),
	}
	stalenessGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "keysync_stale_seconds", Help: "Seconds since the last successful store read (0 before the first).",
	}, stale)
	m.reg.MustRegister(m.syncs, m.lastSuccess, m.generation, m.keysWritten, m.signals, m.confirmations, stalenessGauge,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	for _, r := range []string{"ok", "error", "rejected"} {
		m.syncs.WithLabelValues(r)
	}
	for _, r := range []string{"sent", "not_found", "error"} {
		m.signals.WithLabelValues(r)
	}
	return m
}
