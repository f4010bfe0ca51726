// Package counting is an HTTP reverse proxy between many clients and one store server
// that counts the requests of every second and can refuse them all for a while (a store
// outage as its clients see it: every request answered 503). The fleet and scale
// benchmarks measure the load keysync's sidecars put on a store with it.
package counting

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Book counts events per second since it was made, for servers that count their own calls
// (a Proxy keeps one for the requests it forwards).
type Book struct {
	mu     sync.Mutex
	start  time.Time
	counts []int // events in each second since start
}

// NewBook starts counting now.
func NewBook() *Book { return &Book{start: time.Now()} }

// Proxy counts requests per second since it started.
type Proxy struct {
	*Book
	srv *http.Server
	ln  net.Listener
	cut atomic.Bool
}

// Start proxies to the server at target (a URL) from a loopback port.
func Start(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Book: NewBook(), ln: ln}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	// Many clients, one server: keep their connections to it.
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.Count(1)
		if p.cut.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is where clients reach the proxy.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Count adds n to the current second.
func (p *Book) Count(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := int(time.Since(p.start) / time.Second)
	for len(p.counts) <= i {
		p.counts = append(p.counts, 0)
	}
	p.counts[i] += n
}

// Window returns the per-second counts between two instants.
func (p *Book) Window(from, to time.Time) []int {
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

// Cut answers every request with 503 until restore is called.
func (p *Proxy) Cut() (restore func()) {
	p.cut.Store(true)
	return func() { p.cut.Store(false) }
}

// Close stops the proxy.
func (p *Proxy) Close() { _ = p.srv.Close() }
