// Package reloadprom exports what a reload.Handle signed and verified as Prometheus
// metrics. It is a package of its own so that the reload library itself needs the standard
// library and fsnotify only:
//
//	prometheus.MustRegister(reloadprom.NewCollector(keys))
//
// The series (the Node library's metricsText gives the same):
//
//	keysync_app_verifications_total{key_id,state,result}  verifications by the key's state at
//	    that instant (held, pending, current, previous; legacy for bare signatures; expired)
//	    and result (ok, bad_signature, expired_key, unknown_key, malformed_signature); key_id
//	    and state are empty when no key can be named (never the unknown id itself).
//	keysync_app_signatures_total{key_id}
//	keysync_app_key_last_verified_timestamp_seconds{key_id}
package reloadprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sigil-dna/keysync/keyring"
)

// Source is what the collector reads: a *reload.Handle.
type Source interface {
	Usage() keyring.UsageSnapshot
}

var (
	verifications = prometheus.NewDesc("keysync_app_verifications_total",
		"Signature verifications by the key's state at that instant and the result.", []string{"key_id", "state", "result"}, nil)
	signatures = prometheus.NewDesc("keysync_app_signatures_total",
		"Signatures made with each key.", []string{"key_id"}, nil)
	lastVerified = prometheus.NewDesc("keysync_app_key_last_verified_timestamp_seconds",
		"Unix time each key last verified a signature.", []string{"key_id"}, nil)
)

// Collector is a prometheus.Collector over a Source.
type Collector struct{ src Source }

// NewCollector returns a collector of src's usage.
func NewCollector(src Source) *Collector { return &Collector{src: src} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- verifications
	ch <- signatures
	ch <- lastVerified
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	u := c.src.Usage()
	for _, v := range u.Verifications {
		ch <- prometheus.MustNewConstMetric(verifications, prometheus.CounterValue, float64(v.N), v.KeyID, string(v.State), v.Result)
	}
	for _, k := range u.Keys {
		ch <- prometheus.MustNewConstMetric(signatures, prometheus.CounterValue, float64(k.Signatures), k.KeyID)
		if !k.LastVerified.IsZero() {
			ch <- prometheus.MustNewConstMetric(lastVerified, prometheus.GaugeValue, float64(k.LastVerified.Unix()), k.KeyID)
		}
	}
}
