package storetest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy in front of a test server, which can be cut to make the server
// unreachable for a store without stopping it (and losing what it holds): while cut,
// nothing listens on its address and every connection it carried is closed.
type Proxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	done   bool
}

// NewProxy listens on loopback and forwards every connection to target (host:port)
// until the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := StartProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// StartProxy is NewProxy for a program (the fleet benchmark): Close it.
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	go p.serve(ln)
	return p, nil
}

// Close stops the proxy for good.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
	p.stop()
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

// Cut stops listening and closes every connection until restore is called (once or more).
func (p *Proxy) Cut() (restore func()) {
	p.stop()
	return func() {
		p.mu.Lock()
		listening := p.ln != nil || p.done
		p.mu.Unlock()
		if listening {
			return
		}
		for range 100 { // the port was just released; take it again
			ln, err := net.Listen("tcp", p.addr)
			if err == nil {
				p.mu.Lock()
				p.ln = ln
				p.mu.Unlock()
				go p.serve(ln)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		panic("storetest: cannot listen on " + p.addr + " again")
	}
}

func (p *Proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *Proxy) track(ln net.Listener, cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != ln || p.done {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) serve(ln net.Listener) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			out, err := net.Dial("tcp", p.target)
			if err != nil || !p.track(ln, in, out) {
				in.Close()
				if out != nil {
					out.Close()
				}
				return
			}
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			_, _ = io.Copy(in, out)
			in.Close()
		}()
	}
}
