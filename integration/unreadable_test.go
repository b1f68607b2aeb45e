package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnreadableStoreStopsCaddy: a store file Caddy cannot read stops it
// from starting, with an error naming the file. Root reads any file, so as
// root the check runs `caddy validate` (which provisions every module) as
// the unprivileged user nobody.
func TestUnreadableStoreStopsCaddy(t *testing.T) {
	dir, err := os.MkdirTemp("", "tokenauth-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "db.sqlite3")
	if err := os.WriteFile(db, []byte("SQLite format 3\x00"), 0o000); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, []byte("http://localhost:9099 {\n\ttoken_auth {\n\t\tstore sqlite "+db+"\n\t}\n\trespond ok\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "caddy")
	data, err := os.ReadFile(caddyBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}

	args := []string{bin, "validate", "--config", config, "--adapter", "caddyfile"}
	if os.Geteuid() == 0 {
		runuser, err := exec.LookPath("runuser")
		requireOrSkip(t, "runuser", err)
		args = append([]string{runuser, "-u", "nobody", "--"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("caddy validate accepted an unreadable store:\n%s", out)
	}
	for _, want := range []string{db, "permission denied"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the error does not name %q:\n%s", want, out)
		}
	}
}
