package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/sigil-dna/keysync/reload"
)

// httpApp reads the app's status endpoint (the reload library's status handler).
type httpApp struct {
	url    string
	client *http.Client
}

func newHTTPApp(url string) *httpApp {
	return &httpApp{url: url, client: &http.Client{Timeout: appReadTimeout}}
}

func (a *httpApp) String() string { return a.url }

func (a *httpApp) read(ctx context.Context) (reload.Status, error) {
	var st reload.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
	if err != nil {
		return st, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return st, fmt.Errorf("app status %s: %w", a.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("app status %s answered %s", a.url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("app status %s: not the reload library's status JSON", a.url)
	}
	if st.Generation < 0 || len(st.KeyIDs) > 64 {
		return reload.Status{}, fmt.Errorf("app status %s: implausible answer", a.url)
	}
	return st, nil
}
