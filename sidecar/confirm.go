package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// appStatus is the part of the reload library's status the sidecar reads.
type appStatus struct {
	Generation int64    `json:"generation"`
	KeyIDs     []string `json:"key_ids"`
}

// confirm polls the app's status endpoint until it reports generation and ids, or ctx ends.
func confirm(ctx context.Context, client *http.Client, url string, generation int64, ids []string) error {
	var last string
	for {
		st, err := fetchStatus(ctx, client, url)
		if err == nil && st.Generation == generation && slices.Equal(st.KeyIDs, ids) {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("app reports generation %d", st.Generation)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reload of generation %d not confirmed by %s: %s", generation, url, last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func fetchStatus(ctx context.Context, client *http.Client, url string) (appStatus, error) {
	var st appStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status endpoint answered %s", resp.Status)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
	return st, err
}
