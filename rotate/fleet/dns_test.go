package fleet_test

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
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
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := q.Question[0].Name
		ips, ok := records[strings.TrimSuffix(name, ".")]
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
