//go:build unix

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// djangoFile makes a database as `manage.py migrate` would (rollback
// journal, Django's DDL), not through the store.
func djangoFile(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, ddl := range Schema {
		if _, err := db.Exec(ddl); err != nil {
			t.Fatal(err)
		}
	}
}

// withUmask runs the test under a permissive umask.
func withUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", filepath.Base(path), got, want)
	}
}

// The files token_auth creates hold plaintext keys and password hashes:
// only their owner may read them, whatever the umask — the database, and
// the -wal and -shm SQLite makes beside it while serving, and a -journal.
func TestCreatedFilesAreOwnerOnly(t *testing.T) {
	withUmask(t, 0o022)
	dir := filepath.Join(t.TempDir(), "token_auth")
	path := filepath.Join(dir, "tokens.sqlite3")
	s := provision(t, path, true)
	checkMode(t, path, 0o600)
	checkMode(t, dir, 0o700)

	// Serving in WAL mode: a write leaves -wal and -shm while the store
	// holds its connections.
	if err := s.AddUser(context.Background(), store.NewUser{Username: "alice", Password: "!", Active: true}); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		checkMode(t, path+suffix, 0o600)
	}
	s.Cleanup()

	// In rollback-journal mode, a -journal exists while a write is under way.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`PRAGMA journal_mode=DELETE`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`UPDATE auth_user SET is_active = 0`); err != nil {
		t.Fatal(err)
	}
	checkMode(t, path+"-journal", 0o600)
}

// A file that exists keeps its mode: the store (even with create) never
// changes the permissions of a database it did not create.
func TestExistingFileKeepsItsMode(t *testing.T) {
	withUmask(t, 0o022)
	for _, tc := range []struct {
		name   string
		create bool
		mode   fs.FileMode
	}{
		{"a Django database", false, 0o644},
		{"a Django database named with create", true, 0o640},
		{"an empty file named with create", true, 0o664},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db.sqlite3")
			if strings.HasPrefix(tc.name, "an empty") {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			} else {
				djangoFile(t, path)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			s := provision(t, path, tc.create)
			if err := s.AddUser(context.Background(), store.NewUser{Username: "alice", Password: "!", Active: true}); err != nil {
				t.Fatal(err)
			}
			checkMode(t, path, tc.mode)
		})
	}
}

// A FIFO (or any file that is not a regular file) named as the store is
// refused at once, by name, rather than blocking Provision.
func TestNonRegularFileIsRefused(t *testing.T) {
	for _, create := range []bool{false, true} {
		t.Run(fmt.Sprintf("create=%v", create), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db.sqlite3")
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				// Unblock an open that hangs on the FIFO (the bug), so the
				// test ends.
				if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
			})
			done := make(chan error, 1)
			go func() {
				db, err := open(path, create, time.Second)
				if err == nil {
					db.Destruct()
				}
				done <- err
			}()
			select {
			case err := <-done:
				want := "opening sqlite store " + path + ": not a regular file"
				if err == nil || err.Error() != want {
					t.Fatalf("open: %v, want %q", err, want)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("open blocked for 2s on a FIFO")
			}
		})
	}
}
