package fleet_test

import (
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/store/file"
	"github.com/sigil-dna/keysync/store/storetest"
)

// dnsServer is a real DNS server (miekg/dns) on loopback answering A queries for the
// names in records, NXDOMAIN for the rest, as a cluster DNS answers for a headless
// Service: one A record per ready pod.
func dnsServer(t *testing.T, records map[string][]string) string {
	t.Helper()
	return dnsServerOf(t, func(name string) ([]string, bool) { ips, ok := records[name]; return ips, ok })
}

// dnsServerOf is dnsServer answering from lookup, which a test may change.
func dnsServerOf(t *testing.T, lookup func(name string) ([]string, bool)) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := q.Question[0].Name
		ips, ok := lookup(strings.TrimSuffix(name, "."))
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		if q.Question[0].Qtype == dns.TypeA {
			for _, ip := range ips {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)})
			}
		}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// listenPair listens on the same port at two loopback addresses, as two pods' sidecars
// listen on the same port at two pod IPs.
func listenPair(t *testing.T, a, b string) (net.Listener, net.Listener, int) {
	t.Helper()
	for range 50 {
		la, err := net.Listen("tcp", a+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := la.Addr().(*net.TCPAddr).Port
		lb, err := net.Listen("tcp", net.JoinHostPort(b, strconv.Itoa(port)))
		if err == nil {
			return la, lb, port
		}
		la.Close()
	}
	t.Fatal("no port free at both addresses")
	return nil, nil, 0
}

func TestTheDNSSourceAsksEveryAddressOfAHeadlessService(t *testing.T) {
	primary := filepath.Join(t.TempDir(), "keys.json")
	st, _ := file.New(primary, keyring.Options{})
	storetest.Rotate(t, st, keyring.Options{})
	la, lb, port := listenPair(t, "127.0.0.2", "127.0.0.3")
	ma, mb := startMember(t, primary, la), startMember(t, primary, lb)
	for _, m := range []*member{ma, mb} {
		storetest.WaitFor(t, "the app to confirm", func() bool { return m.sc.Status().App.Confirmed })
	}
	server := dnsServer(t, map[string][]string{"sigil-app-keysync.sigil.svc.cluster.local": {"127.0.0.2", "127.0.0.3"}})

	src, err := fleet.ParseSource("dns://sigil-app-keysync.sigil.svc.cluster.local:"+strconv.Itoa(port)+"?server="+server, fleet.SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	members, err := src.Members(t.Context())
	if err != nil || len(members) != 2 {
		t.Fatalf("%v %+v", err, members)
	}
	g := &fleet.Gate{Sources: []fleet.Source{src}, Poll: 50 * time.Millisecond, Timeout: 30 * time.Second}
	if _, err := g.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	w := &world{store: st, members: []*member{ma, mb}}
	id, since := w.hold(t)
	res, err := g.Wait(t.Context(), id, since)
	if err != nil || res.Confirmed != 2 {
		t.Fatalf("%v %+v", err, res)
	}

	t.Run("a name that does not exist is a clear error", func(t *testing.T) {
		src, _ := fleet.ParseSource("dns://nothing.sigil.svc.cluster.local:9102?server="+server, fleet.SourceOptions{})
		_, err := (&fleet.Gate{Sources: []fleet.Source{src}}).Check(t.Context())
		if err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a DNS server that cannot be reached is a clear error", func(t *testing.T) {
		pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
		dead := pc.LocalAddr().String()
		pc.Close()
		src, _ := fleet.ParseSource("dns://sigil-app-keysync.sigil.svc.cluster.local:9102?server="+dead, fleet.SourceOptions{})
		_, err := (&fleet.Gate{Sources: []fleet.Source{src}}).Check(t.Context())
		if err == nil || !strings.Contains(err.Error(), "resolving sigil-app-keysync") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestAPodGoneFromTheDNSAnswerIsStillWaitedFor: a headless Service's answer lists ready
// pods only, and a pod that stops being ready may still serve with its old keys file.
// Its address stays a member, asked where it was, until it holds the key (prove first:
// it was dropped and the key promoted past it, "1/1").
func TestAPodGoneFromTheDNSAnswerIsStillWaitedFor(t *testing.T) {
	primary := filepath.Join(t.TempDir(), "keys.json")
	st, _ := file.New(primary, keyring.Options{})
	storetest.Rotate(t, st, keyring.Options{})
	la, lb, port := listenPair(t, "127.0.0.4", "127.0.0.5")
	a, b := startMember(t, primary, la), startMember(t, primary, lb)
	for _, m := range []*member{a, b} {
		storetest.WaitFor(t, "the app to confirm", func() bool { return m.sc.Status().App.Confirmed })
	}
	const name = "sigil-app-keysync.sigil.svc.cluster.local"
	var mu sync.Mutex
	answer := []string{"127.0.0.4", "127.0.0.5"}
	server := dnsServerOf(t, func(n string) ([]string, bool) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(answer), n == name
	})
	src, err := fleet.ParseSource("dns://"+name+":"+strconv.Itoa(port)+"?server="+server, fleet.SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.cut(t)
	w := &world{store: st, members: []*member{a, b}}
	id, since := w.hold(t)
	progress := &lines{}
	g := &fleet.Gate{Sources: []fleet.Source{src}, Stores: []string{st.String()}, Poll: 50 * time.Millisecond, Timeout: time.Minute, Progress: progress.add}
	done := make(chan error, 1)
	var res *fleet.Result
	go func() {
		var err error
		res, err = g.Wait(t.Context(), id, since)
		done <- err
	}()
	storetest.WaitFor(t, "b lagging", func() bool { return progress.has("1/2 hold") })
	mu.Lock()
	answer = []string{"127.0.0.4"} // b is not ready: the cluster DNS stops publishing it
	mu.Unlock()
	storetest.WaitFor(t, "b still waited for, named", func() bool {
		return progress.has("1/2 hold " + id[:8] + "…; waiting for " + b.name + " (gone from the fleet's answer, still waited for")
	})
	select {
	case err := <-done:
		t.Fatalf("the gate passed a pod that left the DNS answer without holding the key: %v %+v", err, res)
	case <-time.After(300 * time.Millisecond):
	}
	b.restore(t)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res.Members != 2 || res.Confirmed != 2 || len(res.Seen) != 2 {
		t.Fatalf("result %+v", res)
	}
	if !contains(b.app.Status().KeyIDs, id) {
		t.Fatal("b's app does not hold the key the gate let through")
	}
}
