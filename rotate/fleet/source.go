package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SourceOptions reach what sources name.
type SourceOptions struct {
	// Kube parses a k8s:// fleet (package kubefleet). Nil in a build without the
	// Kubernetes client: such a fleet is then refused.
	Kube func(raw string) (Source, error)
}

// ParseSource reads one fleet:
//
//	k8s://NAMESPACE?selector=LABELS[&port=9102][&container=keysync][&context=CTX]
//	dns://NAME:PORT[?server=HOST:PORT]
//	http://HOST:PORT[,http://HOST:PORT…]   (https too)
//
// Errors name the part that is wrong; nothing is contacted.
func ParseSource(raw string, o SourceOptions) (Source, error) {
	switch {
	case strings.HasPrefix(raw, "k8s://"):
		if o.Kube == nil {
			return nil, fmt.Errorf("fleet %q: k8s:// fleets need the Kubernetes client, which this build does not have", raw)
		}
		return o.Kube(raw)
	case strings.HasPrefix(raw, "dns://"):
		return parseDNS(raw)
	case strings.HasPrefix(raw, "http://"), strings.HasPrefix(raw, "https://"):
		return parseStatic(raw)
	}
	scheme, _, _ := strings.Cut(raw, "://")
	return nil, fmt.Errorf("fleet %q: unknown scheme %q; use k8s://NAMESPACE?selector=LABELS, dns://NAME:PORT or a list of http://HOST:PORT sidecar URLs", raw, scheme)
}

// Query reads a source's query string, refusing parameters it does not know.
func Query(raw string, u *url.URL, known ...string) (url.Values, error) {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("fleet %q: query: %w", raw, err)
	}
	for k := range q {
		if !containsString(known, k) {
			return nil, fmt.Errorf("fleet %q: unknown parameter %q (known: %s)", raw, k, strings.Join(known, ", "))
		}
	}
	return q, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ParsePort reads a source's port number.
func ParsePort(raw, p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("fleet %q: port %q is not a port number", raw, p)
	}
	return n, nil
}

// Static is a fixed list of sidecar URLs (docker-compose, VMs).
type Static struct{ URLs []string }

func parseStatic(raw string) (*Static, error) {
	s := &Static{}
	for _, part := range strings.Split(raw, ",") {
		part = strings.TrimSpace(part)
		u, err := url.Parse(part)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("fleet %q: %q is not a sidecar URL such as http://10.0.0.7:9102", raw, part)
		}
		s.URLs = append(s.URLs, strings.TrimSuffix(part, "/"))
	}
	return s, nil
}

// Members implements Source.
func (s *Static) Members(context.Context) ([]Member, error) {
	out := make([]Member, len(s.URLs))
	for i, u := range s.URLs {
		pu, _ := url.Parse(u)
		out[i] = Member{Name: pu.Host, URL: u}
	}
	return out, nil
}

func (s *Static) String() string { return strings.Join(s.URLs, ",") }

// DNS is every address of a name, such as a headless Service's.
type DNS struct {
	Name   string
	Port   int
	Server string // a DNS server to ask (host:port); empty: the system's resolver
	raw    string
}

func parseDNS(raw string) (*DNS, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("fleet %q: %w", raw, err)
	}
	q, err := Query(raw, u, "server")
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("fleet %q: want dns://NAME:PORT, for example dns://sigil-app-keysync.sigil.svc.cluster.local:9102", raw)
	}
	n, err := ParsePort(raw, port)
	if err != nil {
		return nil, err
	}
	d := &DNS{Name: host, Port: n, Server: q.Get("server"), raw: raw}
	if d.Server != "" {
		if _, _, err := net.SplitHostPort(d.Server); err != nil {
			return nil, fmt.Errorf("fleet %q: server %q is not HOST:PORT", raw, d.Server)
		}
	}
	return d, nil
}

// Members implements Source: one member per address of the name, in the order returned.
func (d *DNS) Members(ctx context.Context) ([]Member, error) {
	r := net.DefaultResolver
	if d.Server != "" {
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, network, d.Server)
		}}
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(lctx, d.Name)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return nil, fmt.Errorf("DNS name %s does not exist (for a headless Service: NAME.NAMESPACE.svc.cluster.local)", d.Name)
		}
		return nil, fmt.Errorf("resolving %s: %w", d.Name, err)
	}
	out := make([]Member, 0, len(addrs))
	for _, a := range addrs {
		hp := net.JoinHostPort(a, strconv.Itoa(d.Port))
		out = append(out, Member{Name: hp, URL: "http://" + hp})
	}
	return out, nil
}

func (d *DNS) String() string { return d.raw }
