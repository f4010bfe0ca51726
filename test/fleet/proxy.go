package main

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// countingProxy sits between the sidecars and the store and counts requests per second,
// so the report can give the fleet's load on the store and any burst after an outage.
type countingProxy struct {
	srv    *http.Server
	ln     net.Listener
	mu     sync.Mutex
	start  time.Time
	counts []int // requests in each second since start
}

func newCountingProxy(target string) (*countingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{ln: ln, start: time.Now()}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.count()
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *countingProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *countingProxy) count() {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := int(time.Since(p.start) / time.Second)
	for len(p.counts) <= i {
		p.counts = append(p.counts, 0)
	}
	p.counts[i]++
}

// window returns the per-second counts between two instants.
func (p *countingProxy) window(from, to time.Time) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, b := int(from.Sub(p.start)/time.Second), int(to.Sub(p.start)/time.Second)
	var out []int
	for i := max(a, 0); i < b; i++ {
		if i < len(p.counts) {
			out = append(out, p.counts[i])
		} else {
			out = append(out, 0)
		}
	}
	return out
}

func (p *countingProxy) Close() { _ = p.srv.Close() }
