package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/internal/storeerr"
)

// PermissionsSchema is Django's DDL for the tables of groups and
// permissions (django_content_type, auth_permission, auth_group and the
// link tables), in creation order, for tools and tests that make a
// database as `manage.py migrate` would, after Schema.
var PermissionsSchema = func() []string {
	var all []string
	for _, t := range ddlPermissions {
		all = append(all, t.ddl...)
	}
	return all
}()

// createPermissionTables creates, in tx, the tables of groups and
// permissions that are missing, and reports whether it created any.
func createPermissionTables(ctx context.Context, tx *sql.Tx) (bool, error) {
	created := false
	for _, t := range ddlPermissions {
		var exists bool
		if err := tx.QueryRowContext(ctx, tableExistsSQL, t.table).Scan(&exists); err != nil {
			return false, err
		}
		if exists {
			continue
		}
		for _, stmt := range t.ddl {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return false, fmt.Errorf("creating table %s: %w", t.table, err)
			}
		}
		created = true
	}
	return created, nil
}

// UserPermissions implements store.Permissions.
func (s *SQLite) UserPermissions(ctx context.Context, userID string) (store.UserPermissions, error) {
	return s.db.userPermissions(ctx, userID)
}

// PermissionsPushed implements store.Permissions: PRAGMA data_version
// sees a commit to any table of the file.
func (s *SQLite) PermissionsPushed() bool { return true }

// EditGroups implements store.Groups.
func (s *SQLite) EditGroups(ctx context.Context, username string, add, remove []string) (created, groups []string, err error) {
	return s.db.editGroups(ctx, username, add, remove)
}

func (d *database) userPermissions(ctx context.Context, userID string) (store.UserPermissions, error) {
	id, err := strconv.ParseInt(userID, 10, 64)
	if err != nil {
		return store.UserPermissions{}, fmt.Errorf("user id %q: %w", userID, store.ErrNoUser)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	h, err := d.use(ctx)
	if err != nil {
		return store.UserPermissions{}, err
	}
	defer h.release()
	var p store.UserPermissions
	var groups, perms string
	err = h.db.QueryRowContext(ctx, userPermissionsSQL, id).Scan(&p.Staff, &p.Superuser, &groups, &perms)
	if err := storeerr.Row(err, sql.ErrNoRows, fmt.Errorf("user id %s: %w", userID, store.ErrNoUser), "sqlite permissions"); err != nil {
		return store.UserPermissions{}, err
	}
	if p.Groups, err = sortedJSON(groups); err == nil {
		p.Perms, err = sortedJSON(perms)
	}
	if err != nil {
		return store.UserPermissions{}, storeerr.Unavailable("sqlite permissions", err)
	}
	return p, nil
}

// sortedJSON reads a JSON array of strings (json_group_array's), sorted
// bytewise; nil for an empty one.
func sortedJSON(s string) ([]string, error) {
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, nil
	}
	slices.Sort(v)
	return v, nil
}

func (d *database) editGroups(ctx context.Context, username string, add, remove []string) (created, groups []string, err error) {
	err = d.inTx(ctx, "sqlite groups", func(tx *sql.Tx) error {
		created, groups = nil, nil
		uid, err := userID(ctx, tx, username)
		if err != nil {
			return err
		}
		for _, name := range add {
			res, err := tx.ExecContext(ctx, insertGroupSQL, name)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				created = append(created, name)
			}
			var gid int64
			if err := tx.QueryRowContext(ctx, groupIDSQL, name).Scan(&gid); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, addUserGroupSQL, uid, gid); err != nil {
				return err
			}
		}
		for _, name := range remove {
			if _, err := tx.ExecContext(ctx, removeUserGroupSQL, uid, name); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, userGroupsSQL, uid)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var g string
			if err := rows.Scan(&g); err != nil {
				return err
			}
			groups = append(groups, g)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(groups)
	return created, groups, nil
}
