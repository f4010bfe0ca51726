package vault

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// TestVaultErrorsFitOneLine: the client's own text of a 403 (as the real server answered
// it in TestAppRoleLoginAndTokenRenewal), bare and wrapped by the KV helper.
func TestVaultErrorsFitOneLine(t *testing.T) {
	re := &api.ResponseError{HTTPMethod: "GET", URL: "http://127.0.0.1:8200/v1/secret/data/x", StatusCode: 403,
		Errors: []string{"1 error occurred:\n\t* permission denied\n\n"}}
	want := "GET /v1/secret/data/x: 403 Forbidden: permission denied"
	for name, err := range map[string]error{
		"bare":    re,
		"wrapped": fmt.Errorf("error encountered while reading secret at x: %w", re),
	} {
		got := oneLine(err)
		if msg := got.Error(); strings.ContainsAny(msg, "\n\r\t") || !strings.HasSuffix(msg, want) {
			t.Errorf("%s: %q", name, msg)
		}
		var back *api.ResponseError
		if !errors.As(got, &back) || back.StatusCode != 403 {
			t.Errorf("%s: the *api.ResponseError is gone", name)
		}
	}
	long := &api.ResponseError{HTTPMethod: "PUT", URL: "http://v/v1/x", StatusCode: 500, Errors: []string{strings.Repeat("é", 400)}}
	if n := len(oneLine(long).Error()); n > 400 {
		t.Errorf("a 400-rune message gives %d bytes", n)
	}
}
