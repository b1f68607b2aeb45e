// Package integration runs real Caddy servers with token_auth. caddytest
// binds the admin endpoint on localhost:2999 and the test site on
// localhost:9080, so every such test lives in this package and none runs in
// parallel.
package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/tokenauth/caddy-tokenauth"
)

// requireOrSkip skips a test whose outside dependency is missing, except
// under CI=true, where a missing dependency fails the run.
func requireOrSkip(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: %v", what, err)
	}
	t.Skipf("%s not available: %v", what, err)
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// caddyBinary builds ./cmd/caddy once per test run and returns its path,
// for tests that run the `caddy token` command line as a user would.
func caddyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "tokenauth-caddy-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, "caddy"), "../cmd/caddy")
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		t.Fatalf("building caddy: %v", buildErr)
	}
	return filepath.Join(buildDir, "caddy")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}
