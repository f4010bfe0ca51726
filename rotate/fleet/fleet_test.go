package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/reload"
	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/sidecar"
	"github.com/sigil-dna/keysync/sidecar/sidecartest"
	"github.com/sigil-dna/keysync/store/file"
	"github.com/sigil-dna/keysync/store/storetest"
)

// member is a real sidecar (in this process) with a real app beside it (the reload
// library behind its status handler). Its store is the fleet's file, reached through a
// symlink of its own that cut breaks: its sidecar then fails to read the store.
type member struct {
	name, link, target string
	sc                 *sidecar.Sidecar
	url                string
	app                *reload.Handle
}

func startMember(t *testing.T, primary string, ln net.Listener) *member {
	t.Helper()
	dir := t.TempDir()
	m := &member{link: filepath.Join(dir, "store.json"), target: primary}
	if err := os.Symlink(primary, m.link); err != nil {
		t.Fatal(err)
	}
	st, err := file.New(m.link, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	// The app: it loads the keys file and serves the reload library's status.
	appSrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(appSrv.Close)
	m.sc = sidecartest.Run(t, sidecar.Config{Store: st, OutDir: out, Interval: 30 * time.Millisecond, BackoffCap: 60 * time.Millisecond,
		ConfirmURL: "http://" + appSrv.Listener.Addr().String() + "/keysync/status"})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m.app, err = reload.Open(ctx, filepath.Join(out, "keys.json"), reload.WithSignals(), reload.WithDebounce(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.app.Close() })
	mux := http.NewServeMux()
	mux.Handle("/keysync/status", m.app.StatusHandler())
	appSrv.Config.Handler = mux
	appSrv.Start()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	srv := &http.Server{Handler: m.sc.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	m.url, m.name = "http://"+ln.Addr().String(), ln.Addr().String()
	return m
}

func (m *member) cut(t *testing.T) {
	t.Helper()
	os.Remove(m.link)
	if err := os.Symlink(m.target+".gone", m.link); err != nil {
		t.Fatal(err)
	}
}

func (m *member) restore(t *testing.T) {
	t.Helper()
	os.Remove(m.link)
	if err := os.Symlink(m.target, m.link); err != nil {
		t.Fatal(err)
	}
}

// world is a fleet on one file store.
type world struct {
	store   *file.Store
	members []*member
}

func newWorld(t *testing.T, n int) *world {
	t.Helper()
	primary := filepath.Join(t.TempDir(), "keys.json")
	st, err := file.New(primary, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Rotate(t, st, keyring.Options{})
	w := &world{store: st}
	for range n {
		w.members = append(w.members, startMember(t, primary, nil))
	}
	for _, m := range w.members {
		storetest.WaitFor(t, "the app of "+m.name+" to confirm generation 1", func() bool { return m.sc.Status().App.Confirmed })
	}
	return w
}

func (w *world) static() fleet.Source {
	var urls []string
	for _, m := range w.members {
		urls = append(urls, m.url)
	}
	s, err := fleet.ParseSource(strings.Join(urls, ","), fleet.SourceOptions{})
	if err != nil {
		panic(err)
	}
	return s
}

// hold writes a new held key into the store, as a gated rotation does.
func (w *world) hold(t *testing.T) (string, time.Time) {
	t.Helper()
	snap, err := w.store.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := keyring.NewSecret(32)
	next, err := keyring.Hold(snap.Keyring, time.Now(), secret, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.Write(t.Context(), next, snap.Version); err != nil {
		t.Fatal(err)
	}
	return keyring.KeyID(secret), next.RotatedAt
}

// lines collects a gate's progress lines.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) add(s string) { l.mu.Lock(); l.l = append(l.l, s); l.mu.Unlock() }
func (l *lines) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.l {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestTheGateWaitsForAMemberThatCannotReadTheStore(t *testing.T) {
	w := newWorld(t, 3)
	lagger := w.members[1]
	lagger.cut(t)
	storetest.WaitFor(t, "the cut sidecar to report its failing reads", func() bool { return lagger.sc.Status().StoreError != "" })
	id, since := w.hold(t)
	progress := &lines{}
	g := &fleet.Gate{Sources: []fleet.Source{w.static()}, Poll: 50 * time.Millisecond, Timeout: time.Minute, Progress: progress.add}
	if _, err := g.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		res *fleet.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() { res, err := g.Wait(t.Context(), id, since); done <- outcome{res, err} }()
	storetest.WaitFor(t, "a progress line naming the lagging member and why", func() bool {
		return progress.has("2/3 hold "+id[:8]) && progress.has(lagger.name+" (store read failing for")
	})
	select {
	case o := <-done:
		t.Fatalf("the gate passed while a member could not read the store: %+v %v", o.res, o.err)
	case <-time.After(300 * time.Millisecond):
	}
	lagger.restore(t)
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	if o.res.Members != 3 || o.res.Confirmed != 3 || len(o.res.Lagging) != 0 || o.res.MaxSeconds <= 0 || o.res.MaxSeconds < o.res.P50Seconds {
		t.Fatalf("result %+v", o.res)
	}
	for _, m := range w.members {
		if !contains(m.app.Status().KeyIDs, id) {
			t.Fatalf("%s's app does not hold the key the gate let through", m.name)
		}
	}
	t.Logf("gate: %d members, waited %.2fs, confirmations p50 %.3fs max %.3fs", o.res.Members, o.res.WaitedSeconds, o.res.P50Seconds, o.res.MaxSeconds)
}

func contains(ids []string, id string) bool {
	for _, v := range ids {
		if v == id {
			return true
		}
	}
	return false
}

func TestTheGateTimesOutNamingTheLaggard(t *testing.T) {
	w := newWorld(t, 2)
	w.members[0].cut(t)
	id, since := w.hold(t)
	g := &fleet.Gate{Sources: []fleet.Source{w.static()}, Poll: 50 * time.Millisecond, Timeout: 500 * time.Millisecond}
	res, err := g.Wait(t.Context(), id, since)
	if !errors.Is(err, fleet.ErrNotConverged) || !strings.Contains(err.Error(), w.members[0].name) {
		t.Fatalf("err = %v", err)
	}
	if res.Confirmed != 1 || len(res.Lagging) != 1 || res.Lagging[0].Name != w.members[0].name || res.Lagging[0].Why == "" {
		t.Fatalf("result %+v", res)
	}
}

// changing is a source whose members a test changes during a wait: the Kubernetes test
// shows the same with real pods.
type changing struct {
	mu      sync.Mutex
	members []fleet.Member
}

func (c *changing) Members(context.Context) ([]fleet.Member, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]fleet.Member(nil), c.members...), nil
}
func (c *changing) String() string { return "changing test fleet" }
func (c *changing) set(ms ...fleet.Member) {
	c.mu.Lock()
	c.members = ms
	c.mu.Unlock()
}

// TestMembersThatAppearAreWaitedForAndDeletedMembersAreDropped: with an authoritative
// source (the Kubernetes API), a member no longer listed is gone: dropped, and reported
// as deleted. A member that appears is waited for.
func TestMembersThatAppearAreWaitedForAndDeletedMembersAreDropped(t *testing.T) {
	w := newWorld(t, 3)
	a, b, c := w.members[0], w.members[1], w.members[2]
	b.cut(t)
	c.cut(t)
	src := &changing{}
	api := func(m *member) fleet.Member { return fleet.Member{Name: m.name, URL: m.url, Authoritative: true} }
	src.set(api(a), api(b))
	id, since := w.hold(t)
	progress := &lines{}
	g := &fleet.Gate{Sources: []fleet.Source{src}, Poll: 50 * time.Millisecond, Timeout: time.Minute, Progress: progress.add}
	done := make(chan error, 1)
	var res *fleet.Result
	go func() {
		var err error
		res, err = g.Wait(t.Context(), id, since)
		done <- err
	}()
	storetest.WaitFor(t, "b lagging", func() bool { return progress.has("1/2 hold") })
	// b is deleted (its pod went away); c appears, and cannot read the store yet.
	src.set(api(a), api(c))
	storetest.WaitFor(t, "c waited for", func() bool { return progress.has("1/2 hold " + id[:8] + "…; waiting for " + c.name) })
	select {
	case err := <-done:
		t.Fatalf("the gate passed before a new member held the key: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	c.restore(t)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res.Members != 2 || res.Confirmed != 2 || len(res.Deleted) != 1 || res.Deleted[0].Name != b.name {
		t.Fatalf("result %+v", res)
	}
	ended := map[string]string{}
	for _, m := range res.Seen {
		ended[m.Name] = m.Ended
	}
	if ended[a.name] != fleet.EndedConfirmed || ended[b.name] != fleet.EndedDeleted || ended[c.name] != fleet.EndedConfirmed {
		t.Fatalf("seen: %+v", res.Seen)
	}
}

func TestTheCheckRefusesWhatCannotConfirm(t *testing.T) {
	w := newWorld(t, 1)
	good := w.members[0]
	garbage := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprint(rw, "hello") }))
	defer garbage.Close()
	otherJSON := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprint(rw, `{"status":"ok"}`) }))
	defer otherJSON.Close()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	// A sidecar without --confirm-url.
	st, _ := file.New(good.target, keyring.Options{})
	noConfirm := sidecartest.Run(t, sidecar.Config{Store: st, OutDir: t.TempDir(), Interval: time.Second})
	nc := httptest.NewServer(noConfirm.Handler())
	defer nc.Close()
	redirect := httptest.NewServer(http.RedirectHandler(good.url+"/status", http.StatusFound))
	defer redirect.Close()
	for name, tc := range map[string]struct {
		url, want string
	}{
		"a member that redirects":             {redirect.URL, "the answer is a redirect (302), which a sidecar never sends; not followed"},
		"a member answering garbage":          {garbage.URL, "not a keysync sidecar status: the answer is not its JSON"},
		"a member answering other JSON":       {otherJSON.URL, "store, settings, app or at missing"},
		"a member nobody listens for":         {deadURL, "sidecar unreachable"},
		"a sidecar whose app cannot confirm":  {nc.URL, "no --confirm-url"},
		"a good member beside an unreachable": {good.url + "," + deadURL, "sidecar unreachable"},
	} {
		t.Run(name, func(t *testing.T) {
			src, err := fleet.ParseSource(tc.url, fleet.SourceOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = (&fleet.Gate{Sources: []fleet.Source{src}}).Check(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was written") {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("a good fleet passes", func(t *testing.T) {
		r, err := (&fleet.Gate{Sources: []fleet.Source{w.static()}}).Check(t.Context())
		if err != nil || len(r.Observations) != 1 || r.Observations[0].Status.Settings.WorstPropagation <= 0 {
			t.Fatalf("%v %+v", err, r)
		}
	})
	t.Run("a sidecar of another store is refused, a sidecar of a mirror passes", func(t *testing.T) {
		otherPath := filepath.Join(t.TempDir(), "other.json")
		if err := os.WriteFile(otherPath, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		other := "file://" + otherPath
		_, err := (&fleet.Gate{Sources: []fleet.Source{w.static()}, Stores: []string{other}}).Check(t.Context())
		if err == nil || !strings.Contains(err.Error(), good.name+": its sidecar follows file://"+good.link+", not this rotation's store ("+other+")") {
			t.Fatalf("err = %v", err)
		}
		// The member reads the store through a symlink of its own: the same file.
		if _, err := (&fleet.Gate{Sources: []fleet.Source{w.static()}, Stores: []string{other, w.store.String()}}).Check(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an empty fleet is refused", func(t *testing.T) {
		_, err := (&fleet.Gate{Sources: []fleet.Source{&changing{}}}).Check(t.Context())
		if !errors.Is(err, fleet.ErrEmpty) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestParseSourceRefuses(t *testing.T) {
	for raw, want := range map[string]string{
		"ftp://x":                                  `unknown scheme "ftp"`,
		"pods":                                     "unknown scheme",
		"k8s://sigil?selector=app=x":               "need the Kubernetes client, which this build does not have",
		"dns://sigil-app":                          "want dns://NAME:PORT",
		"dns://sigil-app:0":                        "is not a port number",
		"dns://sigil-app:9102?server=nope":         "is not HOST:PORT",
		"http://10.0.0.1:9102/status":              "is not a sidecar URL",
		"http://10.0.0.1:9102,ftp://10.0.0.2:9102": "is not a sidecar URL",
		"http://10.0.0.1:9102,":                    "is not a sidecar URL",
	} {
		if _, err := fleet.ParseSource(raw, fleet.SourceOptions{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", raw, err, want)
		}
	}
}

// TestWhatAMemberSaysIsCleanedBeforeItIsPrinted: a member whose status carries terminal
// escapes, a forged progress line and a megabyte of text reaches the operator's terminal
// as one bounded line without a control character; it is never counted, since it follows
// another store.
func TestWhatAMemberSaysIsCleanedBeforeItIsPrinted(t *testing.T) {
	w := newWorld(t, 1)
	good := w.members[0]
	forged := good.sc.Status()
	// Not a file:// store: a file that does not exist here is a member that cannot read
	// its store (a laggard, not a foreign member).
	forged.Store = "vault://elsewhere/secret/x\x1b]0;owned\x07"
	forged.StoreError = "\x1b[2J\x1b[H\ngate: 20/20 hold 3f9c1a2b…\npromoted\u202e" + strings.Repeat("A", 1<<19)
	forged.App.Error = "\r\x1b[1A\x1b[Kgate: promoted"
	body, err := json.Marshal(forged)
	if err != nil {
		t.Fatal(err)
	}
	liar := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { rw.Write(body) }))
	defer liar.Close()
	id, since := w.hold(t)
	src, _ := fleet.ParseSource(liar.URL, fleet.SourceOptions{})
	progress := &lines{}
	g := &fleet.Gate{Sources: []fleet.Source{src}, Stores: []string{w.store.String()}, Poll: 20 * time.Millisecond, Timeout: 300 * time.Millisecond, Progress: progress.add}
	res, err := g.Wait(t.Context(), id, since)
	if !errors.Is(err, fleet.ErrNotConverged) || res.Confirmed != 0 {
		t.Fatalf("a member following another store was counted: %v %+v", err, res)
	}
	out, _ := json.Marshal(res)
	all := append(append([]string(nil), progress.l...), err.Error(), string(out))
	for _, s := range all {
		if strings.ContainsAny(s, "\x1b\x07\r\n\u202e") {
			t.Fatalf("a control character reached the output: %q", s[:min(len(s), 300)])
		}
		if len(s) > 4*fleet.MaxCleanBytes {
			t.Fatalf("%d bytes of a member's text reached the output", len(s))
		}
	}
	if !strings.Contains(err.Error(), "its sidecar follows vault://elsewhere/secret/x") {
		t.Fatalf("err = %v", err)
	}
}

func TestCleanKeepsWhatIsSafe(t *testing.T) {
	for in, want := range map[string]string{
		"store read failing: 403 permission denied": "store read failing: 403 permission denied",
		"a\x1b[31mb":        "a\ufffd[31mb",
		"line\nforged":      "line forged",
		"bad \xff utf-8":    "bad \ufffd utf-8",
		"ünïcode is fine ✓": "ünïcode is fine ✓",
	} {
		if got := fleet.Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
	if got := fleet.Clean(strings.Repeat("é", 1000)); len(got) > fleet.MaxCleanBytes || !strings.HasSuffix(got, "…") {
		t.Errorf("long: %d bytes", len(got))
	}
}
