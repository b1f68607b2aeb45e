package sqlite

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// errNotRegular refuses what SQLite cannot use as a database file and an
// open could block on (a FIFO, a device).
var errNotRegular = errors.New("not a regular file")

// openFile checks what is at path before SQLite is let near it, creating
// an empty file there when it is missing and create is set, and returns the
// file's identity.
//
// A file created here is owner-only (0600), whatever the umask: it will
// hold keys and password hashes. SQLite gives the -wal, -shm and -journal
// it makes beside a database the database file's own permissions, so they
// are owner-only too. A file that exists keeps its mode.
func openFile(path string, create bool) (os.FileInfo, error) {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return nil, errors.New("is a directory")
	case err == nil && !fi.Mode().IsRegular():
		return nil, errNotRegular
	case errors.Is(err, os.ErrNotExist) && !create:
		return nil, errors.New("no such file (name an existing Django database, add the create option, or leave the path out for the embedded store)")
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			defer f.Close()
			return f.Stat()
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		// Made by another process meanwhile: taken as it is.
	case err != nil:
		return nil, err
	}
	// SQLite opens an unreadable file lazily; say so now, by name. Without
	// O_NONBLOCK, a FIFO put there since the Stat would block the open.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	return fi, nil
}
