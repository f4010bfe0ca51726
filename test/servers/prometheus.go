package servers

import "os"

// PrometheusDir returns the directory holding Debian's prometheus and promtool 2.42
// (test/servers/prometheus.sh, unpacked once into the cache): $KEYSYNC_PROMETHEUS_DIR, or
// what the script unpacks or finds.
func PrometheusDir() (string, error) {
	if d := os.Getenv("KEYSYNC_PROMETHEUS_DIR"); d != "" {
		return d, nil
	}
	return runScript("prometheus.sh")
}
