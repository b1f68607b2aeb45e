package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/internal/storeerr"
)

// flagsTrigger is the second trigger on auth_user, for is_staff and
// is_superuser.
const flagsTrigger = "token_auth_notify_flags"

// permSQL puts the (possibly schema-qualified) names of the tables of
// groups and permissions into the statements of this file.
type permSQL struct {
	schema string
	tables []string // permissionTables, quoted and qualified
	r      *strings.Replacer
}

func newPermSQL(schema string) *permSQL {
	p := &permSQL{schema: schema}
	pairs := []string{"{auth_user}", qualify(schema, "auth_user"), "{notify_fn}", qualify(schema, notifyFunction)}
	for _, t := range permissionTables {
		q := qualify(schema, t)
		p.tables = append(p.tables, q)
		pairs = append(pairs, "{"+t+"}", q)
	}
	p.r = strings.NewReplacer(pairs...)
	return p
}

func (p *permSQL) q(sql string) string { return p.r.Replace(sql) }

// createPermissionTables creates, in tx, the tables of groups and
// permissions that are missing (after auth_user, which they reference).
func (d *database) createPermissionTables(ctx context.Context, tx pgx.Tx) error {
	for i, t := range permissionTables {
		var exists bool
		if err := tx.QueryRow(ctx, tableExistsSQL, d.perms.tables[i]).Scan(&exists); err != nil {
			return err
		}
		if exists {
			continue
		}
		for _, stmt := range ddlPermissions[t] {
			if _, err := tx.Exec(ctx, d.perms.q(stmt)); err != nil {
				return fmt.Errorf("creating table %s: %w", d.perms.tables[i], err)
			}
		}
	}
	return nil
}

// permissionTablesExist tells whether all the tables of groups and
// permissions are there.
func (d *database) permissionTablesExist(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (bool, error) {
	for _, table := range d.perms.tables {
		var exists bool
		if err := q.QueryRow(ctx, tableExistsSQL, table).Scan(&exists); err != nil {
			return false, err
		}
		if !exists {
			return false, nil
		}
	}
	return true, nil
}

// installPermissionTriggers creates, in tx (which holds the migration
// lock, and where the trigger function is in place), the triggers of the
// tables of groups and permissions that are missing, and auth_user's
// trigger on is_staff and is_superuser. Where those tables are not all
// there (a database token_auth made before it knew them, without create),
// it installs nothing: `require` cannot work there either.
func (d *database) installPermissionTriggers(ctx context.Context, tx pgx.Tx) error {
	ok, err := d.permissionTablesExist(ctx, tx)
	if err != nil || !ok {
		return err
	}
	type trigger struct{ table, name, ddl string }
	var triggers []trigger
	for _, table := range d.perms.tables {
		triggers = append(triggers, trigger{table, notifyTrigger, strings.ReplaceAll(d.perms.q(permissionTriggerSQL), "{table}", table)})
	}
	triggers = append(triggers, trigger{d.authUser, flagsTrigger, d.perms.q(flagsTriggerSQL)})
	for _, t := range triggers {
		var exists bool
		if err := tx.QueryRow(ctx, triggerExistsSQL, t.table, t.name).Scan(&exists); err != nil {
			return err
		}
		if exists {
			continue
		}
		if _, err := tx.Exec(ctx, t.ddl); err != nil {
			return fmt.Errorf("creating trigger %s on %s: %w", t.name, t.table, err)
		}
	}
	return nil
}

// settlePermissions looks for the triggers of groups and permissions, as
// settle does for the others.
func (d *database) settlePermissions(ctx context.Context) error {
	var ok bool
	err := d.pool.QueryRow(ctx, permissionTriggersPresentSQL, d.perms.tables, d.authUser).Scan(&ok)
	d.permTriggers.Store(ok)
	return err
}

// UserPermissions implements store.Permissions.
func (s *Postgres) UserPermissions(ctx context.Context, userID string) (store.UserPermissions, error) {
	if !s.db.ready.Load() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.db.timeout)
		defer cancel()
		if err := s.ensure(ctx); err != nil {
			return store.UserPermissions{}, scrubError(err, s.secrets)
		}
	}
	p, err := s.db.userPermissions(ctx, userID)
	return p, scrubError(err, s.secrets)
}

// PermissionsPushed implements store.Permissions: true when the triggers
// of groups and permissions were found on all seven tables (installed by
// the notify option, by `caddy token migrate --notify`, or by another
// Caddy), or, while the database has not been reached yet, when the
// notify option will install them.
func (s *Postgres) PermissionsPushed() bool {
	if !s.db.ready.Load() {
		return s.Notify
	}
	return s.db.permTriggers.Load()
}

// EditGroups implements store.Groups.
func (s *Postgres) EditGroups(ctx context.Context, username string, add, remove []string) (created, groups []string, err error) {
	if err := s.ensure(ctx); err != nil {
		return nil, nil, s.wrap(err)
	}
	created, groups, err = s.db.editGroups(ctx, username, add, remove)
	return created, groups, s.wrap(err)
}

func (d *database) userPermissions(ctx context.Context, userID string) (store.UserPermissions, error) {
	id, err := strconv.ParseInt(userID, 10, 64)
	if err != nil {
		return store.UserPermissions{}, fmt.Errorf("user id %q: %w", userID, store.ErrNoUser)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var p store.UserPermissions
	err = d.pool.QueryRow(ctx, d.perms.q(userPermissionsSQL), id).Scan(&p.Staff, &p.Superuser, &p.Groups, &p.Perms)
	if err := storeerr.Row(err, pgx.ErrNoRows, fmt.Errorf("user id %s: %w", userID, store.ErrNoUser), "postgres permissions"); err != nil {
		return store.UserPermissions{}, err
	}
	p.Groups, p.Perms = sorted(p.Groups), sorted(p.Perms)
	return p, nil
}

// sorted sorts s bytewise; nil for an empty one.
func sorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return s
}

func (d *database) editGroups(ctx context.Context, username string, add, remove []string) (created, groups []string, err error) {
	err = d.inTx(ctx, "postgres groups", func(tx pgx.Tx) error {
		created, groups = nil, nil
		uid, err := d.userID(ctx, tx, username)
		if err != nil {
			return err
		}
		for _, name := range add {
			tag, err := tx.Exec(ctx, d.perms.q(insertGroupSQL), name)
			if err != nil {
				return err
			}
			if tag.RowsAffected() > 0 {
				created = append(created, name)
			}
			var gid int64
			if err := tx.QueryRow(ctx, d.perms.q(groupIDSQL), name).Scan(&gid); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, d.perms.q(addUserGroupSQL), uid, gid); err != nil {
				return err
			}
		}
		for _, name := range remove {
			if _, err := tx.Exec(ctx, d.perms.q(removeUserGroupSQL), uid, name); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, d.perms.q(userGroupsSQL), uid)
		if err != nil {
			return err
		}
		if groups, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		// Caches elsewhere learn of it even without the triggers.
		return notifyIf(ctx, tx, len(add) > 0 || len(remove) > 0)
	})
	if err != nil {
		return nil, nil, err
	}
	return created, sorted(groups), nil
}
