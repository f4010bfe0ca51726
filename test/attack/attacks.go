package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// An attack runs until ctx ends; it reports the bytes it wrote.
type attack struct {
	name string
	run  func(ctx context.Context, addr string, scale int, sent *atomic.Int64)
}

func attacks() []attack {
	return []attack{
		{"200 connections, each sending an unterminated 1 MB header", headers},
		{"200 slowloris connections (a header byte a second)", slowloris},
		{"3000 idle keep-alive connections", idle},
		{"200 connections pipelining /metrics requests, never reading", pipelined},
		{"request flood: 32 clients on 16 addresses, /metrics and /status", flood},
	}
}

func dial(ctx context.Context, addr string, from byte) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	if from != 0 {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, from)}
	}
	return d.DialContext(ctx, "tcp", addr)
}

// each runs f on n connections from one source, redialling what the server closes.
func each(ctx context.Context, addr string, n int, f func(ctx context.Context, c net.Conn)) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := dial(ctx, addr, 0)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				stop := context.AfterFunc(ctx, func() { c.Close() })
				f(ctx, c)
				stop()
				c.Close()
				if ctx.Err() == nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}

func headers(ctx context.Context, addr string, scale int, sent *atomic.Int64) {
	chunk := []byte(strings.Repeat("a", 16<<10))
	each(ctx, addr, 200/scale, func(ctx context.Context, c net.Conn) {
		n, err := c.Write([]byte("GET /status HTTP/1.1\r\nHost: x\r\nX-Big: "))
		sent.Add(int64(n))
		for total := 0; err == nil && total < 1<<20 && ctx.Err() == nil; total += n {
			n, err = c.Write(chunk)
			sent.Add(int64(n))
		}
		io.Copy(io.Discard, c) // until the server closes it
	})
}

func slowloris(ctx context.Context, addr string, scale int, sent *atomic.Int64) {
	each(ctx, addr, 200/scale, func(ctx context.Context, c net.Conn) {
		if n, err := c.Write([]byte("GET /status HTTP/1.1\r\nHost: x\r\n")); err == nil {
			sent.Add(int64(n))
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for ctx.Err() == nil {
			if _, err := c.Write([]byte("X")); err != nil {
				return
			}
			sent.Add(1)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	})
}

func idle(ctx context.Context, addr string, scale int, sent *atomic.Int64) {
	each(ctx, addr, 3000/scale, func(ctx context.Context, c net.Conn) {
		n, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
		sent.Add(int64(n))
		if err != nil {
			return
		}
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, nil); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		io.Copy(io.Discard, br) // idle until the server closes it
	})
}

func pipelined(ctx context.Context, addr string, scale int, sent *atomic.Int64) {
	req := []byte(strings.Repeat("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 100))
	each(ctx, addr, 200/scale, func(ctx context.Context, c net.Conn) {
		for ctx.Err() == nil {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			n, err := c.Write(req)
			sent.Add(int64(n))
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
		}
	})
}

func flood(ctx context.Context, addr string, scale int, sent *atomic.Int64) {
	var wg sync.WaitGroup
	for i := range 32 / min(scale, 4) {
		from := byte(10 + i%16)
		tr := &http.Transport{DialContext: func(ctx context.Context, _, a string) (net.Conn, error) { return dial(ctx, a, from) },
			MaxIdleConnsPerHost: 4}
		cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tr.CloseIdleConnections()
			for j := 0; ctx.Err() == nil; j++ {
				path := "/metrics"
				if j%2 == 1 {
					path = "/status"
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
				resp, err := cl.Do(req)
				if err != nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				sent.Add(64)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
}
