// Package demoapp is the app of the demo and of the end-to-end and fleet tests: a small
// HTTP service built on the reload library, the way a real service would use it. It signs
// events, sends them to other apps, verifies the events it receives and serves the
// reload library's status for the sidecar to confirm reloads.
package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/reload"
)

// SignatureHeader carries an event's signature.
const SignatureHeader = "X-Spiral-Signature"

// SendResult is the answer of POST /send.
type SendResult struct {
	Signed   bool   `json:"signed"`
	Verified bool   `json:"verified"`
	Error    string `json:"error,omitempty"`
}

// Flags are the demo app's settings.
type Flags struct {
	Keys, Listen, PidFile string
	Offset, Poll          time.Duration
	Watch, Legacy         bool
}

// Command returns the demo app's flag set.
func Command() (*cli.Command, *Flags) {
	c := cli.New("app", "The demo app: signs and verifies events with the reload library.", "")
	c.Invocation = "keysync-demo app"
	f := &Flags{}
	c.StringVar(&f.Keys, "keys", "", "keys file written by the sidecar")
	c.StringVar(&f.Listen, "listen", "127.0.0.1:0", "HTTP address")
	c.StringVar(&f.PidFile, "pid-file", "", "write the pid here")
	c.DurationVar(&f.Offset, "clock-offset", 0, "run the app's clock this much ahead (negative: behind)")
	c.DurationVar(&f.Poll, "poll", reload.DefaultPollInterval, "periodic re-read (0: off)")
	c.BoolVar(&f.Watch, "watch", true, "reload on changes of the keys directory")
	c.BoolVar(&f.Legacy, "legacy", false, "sign bare legacy signatures")
	return c, f
}

// Main runs the app until ctx ends.
func Main(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	c, f := Command()
	if err := c.Parse(args, getenv, stderr); err != nil {
		return err
	}
	keys, listen, pidFile, offset, poll, watch, legacy := f.Keys, f.Listen, f.PidFile, f.Offset, f.Poll, f.Watch, f.Legacy
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("app_pid", os.Getpid())
	opts := []reload.Option{reload.WithLogger(log), reload.WithFileWatch(watch),
		reload.WithPollInterval(poll), reload.WithLegacySignatures(legacy)}
	if offset != 0 { // a skewed clock is read per call; the app's own is the library's default
		opts = append(opts, reload.WithClock(func() time.Time { return time.Now().Add(offset) }))
	}
	// Open first: it installs the SIGHUP handler before anything else can take time.
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	k, err := reload.Open(openCtx, keys, opts...)
	cancel()
	if err != nil {
		return err
	}
	defer k.Close()
	if pidFile != "" {
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: Handler(k), ReadHeaderTimeout: 5 * time.Second}
	log.Info("demo app listening", "addr", ln.Addr().String(), "keys", keys, "clock_offset", offset.String())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// Handler serves GET /keysync/status, POST /event (verify a signed event) and
// POST /send?to=URL (sign the body and deliver it to another app's /event).
func Handler(k *reload.Handle) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /keysync/status", k.StatusHandler())
	mux.HandleFunc("POST /event", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "reading body", http.StatusBadRequest)
			return
		}
		if err := k.Verify(body, r.Header.Get(SignatureHeader)); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /send", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		res := send(r.Context(), k, r.URL.Query().Get("to"), body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	})
	return mux
}

func send(ctx context.Context, k *reload.Handle, to string, body []byte) SendResult {
	sig, err := k.Sign(body)
	if err != nil {
		return SendResult{Error: "sign: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, to+"/event", bytes.NewReader(body))
	if err != nil {
		return SendResult{Signed: true, Error: err.Error()}
	}
	req.Header.Set(SignatureHeader, sig)
	resp, err := client.Do(req)
	if err != nil {
		return SendResult{Signed: true, Error: "deliver: " + err.Error()}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch resp.StatusCode {
	case http.StatusNoContent:
		return SendResult{Signed: true, Verified: true}
	case http.StatusUnauthorized:
		return SendResult{Signed: true, Error: "rejected: " + string(bytes.TrimSpace(msg))}
	}
	return SendResult{Signed: true, Error: fmt.Sprintf("deliver: %s", resp.Status)}
}
