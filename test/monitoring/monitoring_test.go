// Package monitoring tests what manifests/monitoring ships: the alert rules with promtool
// (check and unit tests), every metric name the alerts and the dashboard use against a
// real sidecar's /metrics, and the rules evaluated by a real Prometheus server scraping a
// real sidecar whose store goes down and comes back.
package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/reload"
	"github.com/sigil-dna/keysync/reload/reloadprom"
	"github.com/sigil-dna/keysync/sidecar"
	"github.com/sigil-dna/keysync/sidecar/sidecartest"
	"github.com/sigil-dna/keysync/store/awsssm/awsssmtest"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/awsfake"
	"github.com/sigil-dna/keysync/test/servers"
)

const dir = "../../manifests/monitoring"

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Annotations map[string]string `json:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

// shippedRules writes the PrometheusRule's spec (a plain Prometheus rule file) and a copy
// of rules_test.yaml into a fresh directory and returns it with the parsed rules.
func shippedRules(t *testing.T) (string, []rule) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var typed monitoringv1.PrometheusRule
	if err := yaml.UnmarshalStrict(raw, &typed); err != nil {
		t.Fatalf("prometheusrule.yaml is not a PrometheusRule: %v", err)
	}
	var pr struct {
		Kind string   `json:"kind"`
		Spec ruleFile `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &pr); err != nil {
		t.Fatalf("prometheusrule.yaml: %v", err)
	}
	if pr.Kind != "PrometheusRule" {
		t.Fatalf("kind %q", pr.Kind)
	}
	// The spec as written, not as re-encoded: every field of it reaches promtool.
	var whole map[string]any
	if err := yaml.Unmarshal(raw, &whole); err != nil {
		t.Fatal(err)
	}
	spec, err := yaml.Marshal(whole["spec"])
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	tests, err := os.ReadFile(filepath.Join(dir, "rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "rules.yaml"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "rules_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	var rules []rule
	for _, g := range pr.Spec.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) < 7 {
		t.Fatalf("%d rules", len(rules))
	}
	return out, rules
}

func prometheusDir(t *testing.T) string {
	t.Helper()
	d, err := servers.PrometheusDir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestShippedAlertsPassPromtool(t *testing.T) {
	promtool := filepath.Join(prometheusDir(t), "promtool")
	work, rules := shippedRules(t)
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// Every alert is unit-tested both ways: a case where it fires and one where it stays
	// quiet.
	raw, _ := os.ReadFile(filepath.Join(dir, "rules_test.yaml"))
	var tf struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `json:"alertname"`
				ExpAlerts []map[string]any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(raw, &tf); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}

	runbook, err := os.ReadFile("../../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(runbook), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			anchors[strings.ToLower(strings.ReplaceAll(h, " ", "-"))] = true
		}
	}
	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		if !fires[r.Alert] || !quiet[r.Alert] {
			t.Errorf("%s: rules_test.yaml has a firing case %v and a quiet case %v, want both", r.Alert, fires[r.Alert], quiet[r.Alert])
		}
		url := r.Annotations["runbook_url"]
		_, anchor, _ := strings.Cut(url, "docs/runbook.md#")
		if !anchors[anchor] {
			t.Errorf("%s: runbook_url %q names no section of docs/runbook.md", r.Alert, url)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: no summary or description", r.Alert)
		}
	}
}

// pod is a real sidecar (in this process, serving its HTTP API on loopback) polling a
// Parameter Store parameter on the AWS fake through a cuttable proxy, with the app's reload
// library beside it confirming each reload.
type pod struct {
	fx  *storetest.Fixture
	sc  *sidecar.Sidecar
	app *reload.Handle
	url string
}

func startPod(t *testing.T, maxStale time.Duration) *pod {
	t.Helper()
	f := awsfake.StartT(t)
	fx := awsssmtest.Open(t, f.AWS(), f)
	storetest.Rotate(t, fx.Store, keyring.Options{ActivationDelay: time.Millisecond, VerifyWindow: time.Hour})
	out := t.TempDir()
	appSrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(appSrv.Close)
	p := &pod{fx: fx}
	p.sc = sidecartest.Run(t, sidecar.Config{Store: fx.Store, OutDir: out, Interval: 100 * time.Millisecond, BackoffCap: 200 * time.Millisecond,
		MaxStale: maxStale, ConfirmURL: "http://" + appSrv.Listener.Addr().String() + "/keysync/status"})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var err error
	if p.app, err = reload.Open(ctx, filepath.Join(out, "keys.json"), reload.WithDebounce(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.app.Close() })
	mux := http.NewServeMux()
	mux.Handle("/keysync/status", p.app.StatusHandler())
	appSrv.Config.Handler = mux
	appSrv.Start()
	srv := httptest.NewServer(p.sc.Handler())
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// rotate rotates the store and waits until the app confirmed the new generation.
func (p *pod) rotate(t *testing.T) {
	t.Helper()
	r := storetest.Rotate(t, p.fx.Another(), keyring.Options{ActivationDelay: time.Millisecond, VerifyWindow: time.Hour})
	storetest.WaitFor(t, "the app to confirm the rotation", func() bool {
		st := p.sc.Status()
		return st.App.Generation == r.Generation && st.App.Confirmed
	})
}

var metricName = regexp.MustCompile(`\b(keysync|process|go)_[a-zA-Z0-9_]+\b`)

// TestEveryMetricTheAlertsAndDashboardUseIsExported: a name in an alert or a panel that no
// sidecar or app library exports would make that alert never fire and that panel stay
// empty. The sidecar's from its /metrics; the app's from the Go library's collector (the
// Node library's metricsText has the same names: reload/node/test).
func TestEveryMetricTheAlertsAndDashboardUseIsExported(t *testing.T) {
	p := startPod(t, time.Minute)
	p.rotate(t) // a replaced key (with its end), a confirmed reload, the app's key ids
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The app's own series, as its /metrics serves them with the Go library's collector.
	reg := prometheus.NewRegistry()
	reg.MustRegister(reloadprom.NewCollector(p.app))
	if err := p.app.Verify([]byte("x"), "ks1.0000000000000000."+strings.Repeat("0", 64)); err == nil {
		t.Fatal("a made-up signature verified")
	}
	if sig, err := p.app.Sign([]byte("x")); err != nil || p.app.Verify([]byte("x"), sig) != nil {
		t.Fatalf("sign and verify: %v", err)
	}
	appMetrics := new(bytes.Buffer)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(appMetrics, mf); err != nil {
			t.Fatal(err)
		}
	}
	body = append(body, appMetrics.Bytes()...)
	exported := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
			if f[3] == "histogram" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					exported[f[2]+s] = true
				}
			}
		}
	}
	// Families a sidecar shows only once it has something to show must be there now.
	for _, n := range []string{"keysync_key_info", "keysync_key_not_after_timestamp_seconds", "keysync_app_key_info", "keysync_reload_confirmation_seconds",
		"keysync_app_verifications_total", "keysync_app_signatures_total", "keysync_app_key_last_verified_timestamp_seconds"} {
		if !exported[n] {
			t.Fatalf("%s not on /metrics after a confirmed rotation:\n%s", n, body)
		}
	}

	_, rules := shippedRules(t)
	var exprs []string
	for _, r := range rules {
		exprs = append(exprs, r.Expr)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	for _, pn := range dash.Panels {
		if len(pn.Targets) == 0 {
			t.Errorf("panel %q queries nothing", pn.Title)
		}
		for _, tg := range pn.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	used := map[string]bool{}
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			used[n] = true
		}
	}
	if len(used) < 12 {
		t.Fatalf("only %d metric names found in the alerts and the dashboard: %v", len(used), used)
	}
	for n := range used {
		if !exported[n] {
			t.Errorf("%s is used by an alert or a panel but no sidecar exports it", n)
		}
	}
}

// TestPrometheusEvaluatesTheShippedRules: a real Prometheus server scrapes a real sidecar
// the way the PodMonitor says (its path, a 1 s interval here) and evaluates the shipped rule
// file as it is. Healthy, no alert is active; with the store cut off, KeysyncKeysStale goes
// pending (then firing after its "for"); with the store back it resolves.
func TestPrometheusEvaluatesTheShippedRules(t *testing.T) {
	prom := filepath.Join(prometheusDir(t), "prometheus")
	work, _ := shippedRules(t)
	p := startPod(t, 2*time.Second)
	p.rotate(t)

	var pm struct {
		Spec struct {
			PodMetricsEndpoints []struct {
				Path string `json:"path"`
			} `json:"podMetricsEndpoints"`
		} `json:"spec"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "podmonitor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &pm); err != nil || len(pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("podmonitor.yaml: %v", err)
	}
	// What the operator generates from the PodMonitor, with a static target for the pod.
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules.yaml]
scrape_configs:
  - job_name: sigil/keysync
    metrics_path: %s
    static_configs:
      - targets: [%q]
        labels: {namespace: sigil, pod: sigil-app-0, container: keysync}
`, pm.Spec.PodMetricsEndpoints[0].Path, strings.TrimPrefix(p.url, "http://"))
	if err := os.WriteFile(filepath.Join(work, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, prom, "--config.file=prometheus.yml", "--storage.tsdb.path=data",
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Dir = work
	logs := new(strings.Builder)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus:\n%s", logs)
		}
	})
	api := "http://" + addr + "/api/v1/"

	storetest.WaitFor(t, "Prometheus to scrape the sidecar", func() bool {
		v := query(t, api, `keysync_app_confirmed{job="sigil/keysync"}`)
		return len(v) == 1 && v[0] == "1"
	})
	// Healthy: several evaluations, and no alert at all.
	time.Sleep(3 * time.Second)
	if a := alerts(t, api); len(a) != 0 {
		t.Fatalf("alerts on a healthy pod: %+v", a)
	}

	restore := p.fx.Outage()
	storetest.WaitFor(t, "KeysyncKeysStale to go pending with the store cut off", func() bool {
		for _, a := range alerts(t, api) {
			if a.Labels["alertname"] == "KeysyncKeysStale" && a.Labels["pod"] == "sigil-app-0" && (a.State == "pending" || a.State == "firing") {
				return true
			}
		}
		return false
	})
	restore()
	storetest.WaitFor(t, "KeysyncKeysStale to resolve with the store back", func() bool {
		for _, a := range alerts(t, api) {
			if a.Labels["alertname"] == "KeysyncKeysStale" {
				return false
			}
		}
		return true
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// alerts returns the active alerts (pending or firing); none while Prometheus is not up.
func alerts(t *testing.T, api string) []alert {
	var out struct {
		Data struct {
			Alerts []alert `json:"alerts"`
		} `json:"data"`
	}
	get(t, api+"alerts", &out)
	return out.Data.Alerts
}

// query returns the values of an instant query's samples.
func query(t *testing.T, api, q string) []string {
	var out struct {
		Data struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	get(t, api+"query?query="+url.QueryEscape(q), &out)
	var vs []string
	for _, r := range out.Data.Result {
		if len(r.Value) == 2 {
			vs = append(vs, fmt.Sprint(r.Value[1]))
		}
	}
	return vs
}

func get(t *testing.T, u string, v any) {
	resp, err := http.Get(u)
	if err != nil {
		return // not up yet
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Errorf("%s: %v", u, err)
	}
}

// TestTheShippedObjectsAreValidAndTheChartRendersTheSame: the kustomize build of
// manifests/monitoring decodes strictly into prometheus-operator's own API types (an
// unknown or misplaced field fails), the dashboard ConfigMap carries Grafana's sidecar
// label, and the Helm chart's toggles render the same rules and dashboard, with a
// PodMonitor that selects the chart's own pods on the sidecar's port.
func TestTheShippedObjectsAreValidAndTheChartRendersTheSame(t *testing.T) {
	assets, err := servers.KubeAssets()
	if err != nil {
		t.Fatal(err)
	}
	helm, err := servers.HelmBinary()
	if err != nil {
		t.Fatal(err)
	}
	shipped := objects(t, run(t, filepath.Join(assets, "kubectl"), "kustomize", dir))
	chart := objects(t, run(t, helm, "template", "r", "../../manifests/helm/keysync-app", "--namespace", "sigil",
		"--set", "keysync.enabled=true", "--set", "keysync.monitoring.prometheusRule.enabled=true",
		"--set", "keysync.monitoring.podMonitor.enabled=true", "--set", "keysync.monitoring.dashboard.enabled=true"))
	off := objects(t, run(t, helm, "template", "r", "../../manifests/helm/keysync-app", "--namespace", "sigil",
		"--set", "keysync.enabled=true"))

	for name, objs := range map[string]map[string][]byte{"kustomize build": shipped, "chart": chart} {
		var rule monitoringv1.PrometheusRule
		var pm monitoringv1.PodMonitor
		var cm corev1.ConfigMap
		for kind, into := range map[string]any{"PrometheusRule": &rule, "PodMonitor": &pm, "ConfigMap": &cm} {
			raw, ok := objs[kind]
			if !ok {
				t.Fatalf("%s: no %s", name, kind)
			}
			if err := yaml.UnmarshalStrict(raw, into); err != nil {
				t.Fatalf("%s: %s: %v", name, kind, err)
			}
		}
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("%s: the dashboard ConfigMap's labels %v lack grafana_dashboard", name, cm.Labels)
		}
		if len(pm.Spec.PodMetricsEndpoints) != 1 || pm.Spec.PodMetricsEndpoints[0].Port == nil || *pm.Spec.PodMetricsEndpoints[0].Port != "keysync-http" {
			t.Errorf("%s: PodMonitor endpoints %+v, want the sidecar's keysync-http port", name, pm.Spec.PodMetricsEndpoints)
		}
		if name == "chart" {
			// Compared with the shipped ones: the same groups, the same dashboard.
			var want monitoringv1.PrometheusRule
			var wantCM corev1.ConfigMap
			_ = yaml.Unmarshal(shipped["PrometheusRule"], &want)
			_ = yaml.Unmarshal(shipped["ConfigMap"], &wantCM)
			a, _ := json.Marshal(rule.Spec)
			b, _ := json.Marshal(want.Spec)
			if string(a) != string(b) {
				t.Errorf("the chart's rules differ from manifests/monitoring/prometheusrule.yaml:\n%s\n%s", a, b)
			}
			if !jsonEqual(t, cm.Data["keysync.json"], wantCM.Data["keysync.json"]) {
				t.Error("the chart's dashboard differs from manifests/monitoring/dashboard.json")
			}
			var dep struct {
				Spec struct {
					Template struct {
						Metadata struct {
							Labels map[string]string `json:"labels"`
						} `json:"metadata"`
					} `json:"template"`
				} `json:"spec"`
			}
			_ = yaml.Unmarshal(chart["Deployment"], &dep)
			for k, v := range pm.Spec.Selector.MatchLabels {
				if dep.Spec.Template.Metadata.Labels[k] != v {
					t.Errorf("the chart's PodMonitor selects %s=%s; its pods have %v", k, v, dep.Spec.Template.Metadata.Labels)
				}
			}
		}
	}
	for _, kind := range []string{"PrometheusRule", "PodMonitor"} {
		if _, ok := off[kind]; ok {
			t.Errorf("the chart renders a %s with monitoring off", kind)
		}
	}
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr)
	}
	return out
}

// objects splits a multi-document YAML stream by kind (one object of each kind here).
func objects(t *testing.T, stream []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, doc := range strings.Split(string(stream), "\n---") {
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		if meta.Kind != "" {
			out[meta.Kind] = []byte(doc)
		}
	}
	return out
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}
