package sidecar

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The status server's limits. The port is reachable from every pod of the cluster the
// NetworkPolicy admits (or every pod, without one), so none of them may exhaust it: a
// client holds at most MaxConnsPerSource connections, each bounded in time and size, and
// the whole server MaxConns.
const (
	// MaxConns bounds the connections open at once; more are closed at accept.
	MaxConns = 128
	// MaxConnsPerSource bounds the connections of one remote address (the kubelet's
	// probes, the Prometheus scrape and the rotator each need one or two).
	MaxConnsPerSource = 12
	// MaxHeaderBytes bounds a request's header (net/http allows 4 KiB more while reading).
	MaxHeaderBytes = 8 << 10
	// ServerReadHeaderTimeout, ServerReadTimeout and ServerWriteTimeout bound one request:
	// its header, the whole request, and its answer; ServerIdleTimeout an idle keep-alive.
	ServerReadHeaderTimeout = 5 * time.Second
	ServerReadTimeout       = 10 * time.Second
	ServerWriteTimeout      = 10 * time.Second
	ServerIdleTimeout       = 30 * time.Second
	// MaxMetricsInFlight bounds the /metrics requests served at once (more get 503).
	MaxMetricsInFlight = 4
)

// Serve serves the sidecar's Handler on ln within the limits above until ctx ends, then
// shuts down within 5 s.
func (s *Sidecar) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: ServerReadHeaderTimeout,
		ReadTimeout:       ServerReadTimeout,
		WriteTimeout:      ServerWriteTimeout,
		IdleTimeout:       ServerIdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		// net/http logs a client's TLS attempts and bad requests to stderr as plain text,
		// with what the client sent in them: not in a JSON log, and not from a peer.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(s.limitListener(ln)) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdown)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// limitListener closes, at accept, a connection beyond MaxConns or beyond
// MaxConnsPerSource of its remote address, and counts it.
func (s *Sidecar) limitListener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, bySource: map[string]int{}, open: s.metrics.connsOpen, refused: s.metrics.connsRefused}
}

type limitListener struct {
	net.Listener
	mu       sync.Mutex
	total    int
	bySource map[string]int
	open     prometheus.Gauge
	refused  *prometheus.CounterVec
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := c.RemoteAddr().String()
		if host, _, err := net.SplitHostPort(src); err == nil {
			src = host
		}
		l.mu.Lock()
		reason := ""
		switch {
		case l.total >= MaxConns:
			reason = refusedTotal
		case l.bySource[src] >= MaxConnsPerSource:
			reason = refusedPerSource
		default:
			l.total++
			l.bySource[src]++
		}
		l.mu.Unlock()
		if reason != "" {
			l.refused.WithLabelValues(reason).Inc()
			c.Close()
			continue
		}
		l.open.Inc()
		return &limitConn{Conn: c, release: func() { l.release(src) }}, nil
	}
}

func (l *limitListener) release(src string) {
	l.mu.Lock()
	l.total--
	if l.bySource[src]--; l.bySource[src] <= 0 {
		delete(l.bySource, src)
	}
	l.mu.Unlock()
	l.open.Dec()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
