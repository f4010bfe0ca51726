package manifests

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// objectsOf parses a multi-document stream into its objects by kind/name.
func objectsOf(t *testing.T, stream []byte) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, doc := range strings.Split(string(stream), "\n---") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		if o == nil {
			continue
		}
		meta, _ := o["metadata"].(map[string]any)
		out[o["kind"].(string)+"/"+meta["name"].(string)] = o
	}
	return out
}

// TestTheLibraryDefaultsAreTheAppChartsValues: a chart that adopts keysync with
// `keysync: {enabled: true}` gets what the app chart's values say, the monitoring toggles
// (the app chart's own) aside.
func TestTheLibraryDefaultsAreTheAppChartsValues(t *testing.T) {
	tpl, err := os.ReadFile("helm/keysync/templates/_keysync.tpl")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(tpl), `{{- define "keysync.defaults" -}}`)
	body, _, ok2 := strings.Cut(rest, "{{- end }}")
	if !ok || !ok2 {
		t.Fatal("no keysync.defaults in the library")
	}
	var defaults map[string]any
	if err := yaml.Unmarshal([]byte(body), &defaults); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("helm/keysync-app/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Keysync map[string]any `json:"keysync"`
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	delete(values.Keysync, "monitoring")
	if !reflect.DeepEqual(defaults, values.Keysync) {
		t.Fatalf("the library's defaults differ from the app chart's keysync values:\n%v\n%v", defaults, values.Keysync)
	}
}

// TestASampleChartAdoptsKeysyncWithOneValue: the sample consumer chart, with
// keysync.enabled=false, renders exactly what the same chart renders with every keysync
// line taken out (the chart before it adopted keysync); with it on, its own init container,
// env, mounts and volumes stay and the sidecar's are added (the API server accepts the
// result: TestEveryManifestIsAcceptedByTheAPIServer).
func TestASampleChartAdoptsKeysyncWithOneValue(t *testing.T) {
	before := filepath.Join(t.TempDir(), "orders")
	if err := os.MkdirAll(filepath.Join(before, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"templates/deployment.yaml", "templates/keysync.yaml"} {
		src, err := os.ReadFile(filepath.Join("helm/example-consumer", name))
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		for _, line := range strings.Split(string(src), "\n") {
			if !strings.Contains(line, "keysync") {
				kept = append(kept, line)
			}
		}
		if err := os.WriteFile(filepath.Join(before, name), []byte(strings.Join(kept, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"Chart.yaml", "values.yaml"} {
		raw, err := os.ReadFile(filepath.Join("helm/example-consumer", name))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "dependencies")
		delete(m, "keysync")
		out, _ := yaml.Marshal(m)
		if err := os.WriteFile(filepath.Join(before, name), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	off := objectsOf(t, run(t, nil, helmBin, "template", "r", "helm/example-consumer", "--namespace", "sigil"))
	want := objectsOf(t, run(t, nil, helmBin, "template", "r", before, "--namespace", "sigil"))
	if !reflect.DeepEqual(off, want) {
		t.Fatalf("with keysync off the chart renders\n%v\nwithout keysync it renders\n%v", off, want)
	}
	if len(want) != 1 {
		t.Fatalf("the chart without keysync renders %d objects", len(want))
	}

	on := run(t, nil, helmBin, "template", "r", "helm/example-consumer", "--namespace", "sigil", "--set", "keysync.enabled=true")
	objs := objectsOf(t, on)
	for _, name := range []string{"ServiceAccount/orders-keysync", "Role/orders-keysync", "RoleBinding/orders-keysync", "Deployment/orders"} {
		if objs[name] == nil {
			t.Errorf("no %s with keysync on", name)
		}
	}
	d := deployment(t, on)
	spec := d.Spec.Template.Spec
	checkAdded(t, "sample chart", spec.InitContainers[0].Name == "migrate" && len(spec.InitContainers) == 2 && spec.InitContainers[1].Name == "keysync",
		spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace, spec.ServiceAccountName == "orders-keysync")
	app := spec.Containers[0]
	if len(app.Env) != 2 || app.Env[1].Name != "KEYSYNC_KEYS_FILE" || len(app.VolumeMounts) != 2 || app.VolumeMounts[1].Name != "keysync-keys" ||
		len(spec.Volumes) != 3 || spec.Volumes[0].Name != "tmp" {
		t.Errorf("the app's own env, mounts and volumes with the sidecar's: %+v %+v %+v", app.Env, app.VolumeMounts, spec.Volumes)
	}
	if !strings.Contains(strings.Join(spec.InitContainers[1].Args, " "), "--signal-process=orders") {
		t.Errorf("the chart's own value (processName) did not reach the sidecar: %v", spec.InitContainers[1].Args)
	}
}

func checkAdded(t *testing.T, what string, sidecar, pid, account bool) {
	t.Helper()
	if !sidecar || !pid || !account {
		t.Errorf("%s: the sidecar where expected %v, shared process namespace %v, the sidecar's account %v", what, sidecar, pid, account)
	}
}

// TestTheComponentAddsTheSidecarToEveryWorkloadKind: the kustomize Component on a
// Deployment, a StatefulSet and a DaemonSet keeps each one's own containers, init
// containers, mounts and volumes, and adds the sidecar, its volumes, the shared process
// namespace and the app's keys mount.
func TestTheComponentAddsTheSidecarToEveryWorkloadKind(t *testing.T) {
	objs := objectsOf(t, run(t, nil, "kubectl", "kustomize", "components/testdata/workloads"))
	for _, name := range []string{"Deployment/orders", "StatefulSet/ledger", "DaemonSet/relay"} {
		raw, _ := yaml.Marshal(objs[name])
		var d appsv1.Deployment // the pod template is at the same path in all three kinds
		if err := yaml.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		spec := d.Spec.Template.Spec
		// A strategic merge puts the sidecar first among the init containers: it starts
		// before the workload's own ones, which then may read the keys too.
		if len(spec.InitContainers) == 0 {
			t.Fatalf("%s: no init containers", name)
		}
		checkAdded(t, name, spec.InitContainers[0].Name == "keysync" && spec.InitContainers[0].RestartPolicy != nil,
			spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace, spec.ServiceAccountName == "keysync-sidecar")
		app := spec.Containers[0]
		if m := app.VolumeMounts; len(m) == 0 || m[len(m)-1].Name != "keysync-keys" || !m[len(m)-1].ReadOnly {
			t.Errorf("%s: the app's mounts %+v", name, m)
		}
		if e := app.Env; len(e) == 0 || e[len(e)-1].Name != "KEYSYNC_KEYS_FILE" {
			t.Errorf("%s: the app's env %+v", name, e)
		}
		vols := map[string]bool{}
		for _, v := range spec.Volumes {
			vols[v.Name] = true
		}
		if !vols["keysync-keys"] || !vols["keysync-api-access"] {
			t.Errorf("%s: volumes %v", name, vols)
		}
		if d.Spec.Template.Annotations["prometheus.io/port"] != "9102" {
			t.Errorf("%s: annotations %v", name, d.Spec.Template.Annotations)
		}
	}
	// What each workload had stays.
	if objs["StatefulSet/ledger"] == nil || objs["DaemonSet/relay"] == nil {
		t.Fatal("a workload is missing")
	}
	for name, own := range map[string]string{"StatefulSet/ledger": "migrate", "DaemonSet/relay": "cache"} {
		raw, _ := yaml.Marshal(objs[name])
		if !strings.Contains(string(raw), own) {
			t.Errorf("%s lost its own %s", name, own)
		}
	}
	for _, name := range []string{"ServiceAccount/keysync-sidecar", "Role/keysync-sidecar", "RoleBinding/keysync-sidecar"} {
		if objs[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}
