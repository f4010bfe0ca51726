package sidecar

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sigil-dna/keysync/keyring"
)

// Label values of the sidecar's series, each defined once: the series are created with
// every value at start (a rate() sees the first increment) and the code counts with the
// same constants; test/monitoring checks the shipped alerts against a running sidecar.
const (
	syncOK, syncError, syncRejected, syncWriteError = "ok", "error", "rejected", "write_error"
	signalSent, signalNotFound, signalFailed        = "sent", "not_found", "error"
	refusedPerSource, refusedTotal                  = "per_source", "total"
	confirmedFromWrite, confirmedFromSignal         = "write", "signal"
)

var (
	syncResults    = []string{syncOK, syncError, syncRejected, syncWriteError}
	signalResults  = []string{signalSent, signalNotFound, signalFailed}
	refusalReasons = []string{refusedPerSource, refusedTotal}
)

// metrics are the sidecar's Prometheus series, on a registry of its own.
type metrics struct {
	reg           *prometheus.Registry
	syncs         *prometheus.CounterVec
	lastSuccess   prometheus.Gauge
	generation    prometheus.Gauge
	keys          *prometheus.GaugeVec
	keysWritten   prometheus.Counter
	signals       *prometheus.CounterVec
	confirmations *prometheus.HistogramVec
	unconfirmed   prometheus.Counter
	appGeneration prometheus.Gauge
	appConfirmed  prometheus.Gauge
	appKeys       *prometheus.GaugeVec
	worst         prometheus.Gauge
	maxStale      prometheus.Gauge
	rotatedAt     prometheus.Gauge
	notAfter      *prometheus.GaugeVec
	connsOpen     prometheus.Gauge
	connsRefused  *prometheus.CounterVec
	repairs       prometheus.Counter
}

func newMetrics(stale func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keysync_syncs_total", Help: "Store reads by result: ok (in the keys file), error (store unreachable or failing), rejected (invalid document), write_error (the keys file could not be written).",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keysync_last_success_timestamp_seconds", Help: "Unix time of the last successful sync: a store read whose keyring is in the keys file.",
		}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keysync_generation", Help: "Generation of the keyring in the keys file.",
		}),
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keysync_key_info", Help: "1 for each key in the keys file, labelled with its id and its state at the last sync (held, pending, current, previous).",
		}, []string{"key_id", "state"}),
		keysWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keysync_keys_written_total", Help: "Keys file writes (only changes are written).",
		}),
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keysync_signals_total", Help: "Signals to the app by result: sent, not_found (missing or too young, retried), error (refused, retried).",
		}, []string{"result"}),
		confirmations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keysync_reload_confirmation_seconds",
			Help:    "Time until the app reported the written generation, from the signal or from the file write.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"from"}),
		unconfirmed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keysync_reload_unconfirmed_total", Help: "Generations the app did not confirm within --confirm-timeout.",
		}),
		appGeneration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keysync_app_generation", Help: "Generation the app reported last through --confirm-url (0: never).",
		}),
		appConfirmed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keysync_app_confirmed", Help: "1 while the app reports holding exactly what the keys file holds.",
		}),
		appKeys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keysync_app_key_info", Help: "1 for each key id the app reported holding last.",
		}, []string{"key_id"}),
		maxStale: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keysync_max_stale_seconds", Help: "--max-stale: readiness fails after this long without a successful sync (0: never).",
		}),
		rotatedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keysync_rotated_timestamp_seconds", Help: "Unix time the keyring in the keys file was rotated (its rotated_at; for a plain value, when the store wrote it).",
		}),
		notAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keysync_key_not_after_timestamp_seconds", Help: "Unix time each key in the keys file stops verifying, for the keys that have an end (a replaced key's verify window).",
		}, []string{"key_id"}),
		worst: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keysync_worst_propagation_seconds", Help: "The longest this sidecar takes to read a new document once the store is readable (interval with jitter or backoff cap, plus the read timeout).",
		}),
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keysync_http_connections", Help: "Connections open on the status port.",
		}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keysync_http_connections_refused_total", Help: "Connections closed at accept: per_source (one address holds the most it may), total (the server holds the most it may).",
		}, []string{"reason"}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keysync_keys_file_repaired_total", Help: "Times the keys file was found different from what the sidecar wrote (replaced or edited by someone else) and rewritten.",
		}),
	}
	stalenessGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "keysync_stale_seconds", Help: "Seconds since the last successful sync (0 before the first).",
	}, stale)
	m.reg.MustRegister(m.syncs, m.lastSuccess, m.generation, m.keys, m.keysWritten, m.signals, m.confirmations, m.unconfirmed,
		m.appGeneration, m.appConfirmed, m.appKeys, m.worst, m.maxStale, m.rotatedAt, m.notAfter, stalenessGauge,
		m.connsOpen, m.connsRefused, m.repairs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range syncResults {
		m.syncs.WithLabelValues(r)
	}
	for _, r := range refusalReasons {
		m.connsRefused.WithLabelValues(r)
	}
	for _, r := range signalResults {
		m.signals.WithLabelValues(r)
	}
	return m
}

// setFile publishes what the keys file holds, with each key's state at now.
func (m *metrics) setFile(r *keyring.Keyring, now time.Time) {
	m.generation.Set(float64(r.Generation))
	if !r.RotatedAt.IsZero() {
		m.rotatedAt.Set(float64(r.RotatedAt.UnixNano()) / 1e9)
	}
	m.keys.Reset()
	m.notAfter.Reset()
	for _, k := range r.Keys {
		m.keys.WithLabelValues(k.ID, string(r.StateAt(k, now))).Set(1)
		if !k.NotAfter.IsZero() {
			m.notAfter.WithLabelValues(k.ID).Set(float64(k.NotAfter.UnixNano()) / 1e9)
		}
	}
}

// setApp publishes what the app reported last.
func (m *metrics) setApp(v AppView) {
	m.appGeneration.Set(float64(v.Generation))
	c := 0.0
	if v.Confirmed {
		c = 1
	}
	m.appConfirmed.Set(c)
	m.appKeys.Reset()
	for _, id := range v.KeyIDs {
		m.appKeys.WithLabelValues(id).Set(1)
	}
}
