package integration

// No knox key in plain text anywhere Caddy writes: not in the database
// (the SQLite file and its journals, byte for byte, and every value of
// every table, on both stores), not in Caddy's log at debug level nor in
// its access log; no password there either.

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKnoxNoPlaintextKeys(t *testing.T) {
	knoxRequire(t)
	djangoEachStore(t, testKnoxNoPlaintextKeys)
}

func testKnoxNoPlaintextKeys(t *testing.T, kind string) {
	db := knoxNewDB(t, kind)
	knoxCreateUsers(t, db,
		djangoUser{Username: "alice", Password: "alice-secret-pw", Active: true},
		djangoUser{Username: "bob", Password: "bob-secret-pw", Active: true})
	dir := t.TempDir()
	logPath, accessPath := filepath.Join(dir, "caddy.log"), filepath.Join(dir, "access.log")
	global := loginGlobal("\tdebug\n\tlog {\n\t\toutput file " + logPath + "\n\t\tlevel DEBUG\n\t}\n")
	site := "\tlog {\n\t\toutput file " + accessPath + "\n\t\tlevel DEBUG\n\t}"
	s := knoxSettings{Prefix: "myapp_"}
	knoxStartCaddy(t, db, s, global, site)

	var keys []string
	secrets := map[string]string{ // what no log may hold: name → value
		"alice's password":          "alice-secret-pw",
		"bob's password":            "bob-secret-pw",
		"alice's Basic credentials": base64.StdEncoding.EncodeToString([]byte("alice:alice-secret-pw")),
	}
	add := func(name, key string) {
		keys = append(keys, key)
		secrets[name] = key
		secrets[name+" without its prefix"] = strings.TrimPrefix(key, s.Prefix)
	}
	basic := knoxSend(t, knoxBasicLogin("alice", "alice-secret-pw"))
	k, _ := knoxLoginBody(t, "Caddy's Basic login", basic, s.Prefix)
	add("the Basic login's key", k)
	recipe := knoxSend(t, knoxPasswordLogin("alice", "alice-secret-pw"))
	k, _ = knoxLoginBody(t, "Caddy's body login", recipe, s.Prefix)
	add("the body login's key", k)
	for _, r := range []knoxRequest{knoxBasicLogin("alice", "wrong"), knoxPasswordLogin("bob", "bob-secret-pw-2")} {
		if got := knoxSend(t, r); got.Status == 200 {
			t.Fatalf("%s: %v", r, got)
		}
	}
	t.Run("caddy token create", func(t *testing.T) {
		out, errOut, code := djangoCaddyCLI(t, "", "token", "create", "bob", "--tokens", "knox", "--expires", "1h", db.storeFlag())
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		cliKey := knoxCLIKey(t, out, "")
		add("the CLI's key", cliKey)
		if strings.Contains(errOut, cliKey) {
			t.Errorf("the key on stderr too: %q", errOut)
		}
	})
	// Use every key; refuse a key whose token_key matches; log one out.
	for _, key := range keys {
		if got := knoxSend(t, knoxGet(key)); got.Status != 200 {
			t.Errorf("the key %s…: %v", key[:15], got)
		}
	}
	near := keys[0][:15] + strings.Repeat("0", len(keys[0])-15)
	secrets["a refused key"] = near
	if got := knoxSend(t, knoxGet(near)); got.Status != 401 {
		t.Errorf("a refused key: %v", got)
	}

	grep := func(t *testing.T, where string, b []byte) {
		t.Helper()
		for name, v := range secrets {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds %s", where, name)
			}
		}
	}
	checkDB := func(t *testing.T) {
		t.Helper()
		if db.kind == "sqlite" {
			for _, suffix := range []string{"", "-wal", "-journal", "-shm"} {
				b, err := os.ReadFile(db.path + suffix)
				if err == nil {
					grep(t, "the database file "+filepath.Base(db.path+suffix), b)
				}
			}
		}
		grep(t, "the tables", []byte(knoxTables(t, db)))
		for _, key := range keys {
			if !strings.Contains(knoxTables(t, db), knoxDigest(key)) && knoxState(t, db).byKey(key) != nil {
				t.Errorf("the digest of %s… is not in the tables", key[:15])
			}
		}
	}
	t.Run("the database while the tokens live", checkDB)
	if got := knoxSend(t, knoxPost(knoxLogout, keys[0])); got.Status != 204 {
		t.Errorf("logout: %v", got)
	}
	if got := knoxSend(t, knoxPost(knoxLogoutAll, keys[1])); got.Status != 204 {
		t.Errorf("logout_all: %v", got)
	}
	t.Run("the database after logout and logout_all", checkDB)

	t.Run("the logs", func(t *testing.T) {
		// The logs reach the files when Caddy writes them; a config
		// reload flushes nothing more, but the requests above have all
		// been answered.
		for _, p := range []string{logPath, accessPath} {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			grep(t, "the log "+filepath.Base(p), b)
			if len(b) == 0 {
				t.Errorf("%s is empty: nothing was checked", filepath.Base(p))
			}
			if p == logPath && !bytes.Contains(b, []byte(`"level":"debug"`)) {
				t.Errorf("%s has no debug line: the check would prove little", filepath.Base(p))
			}
			t.Logf("%s: %d bytes, %d lines", filepath.Base(p), len(b), bytes.Count(b, []byte("\n")))
		}
	})
}
