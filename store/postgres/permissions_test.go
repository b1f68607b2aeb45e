package postgres

import (
	"context"
	"slices"
	"testing"
)

// withPermissionTriggers is others and the triggers of groups and
// permissions in schema, as ourTriggers lists them.
func withPermissionTriggers(schema string, others ...string) []string {
	all := append([]string{schema + ".auth_user:" + flagsTrigger}, others...)
	for _, table := range permissionTables {
		all = append(all, schema+"."+table+":"+notifyTrigger)
	}
	slices.Sort(all)
	return all
}

// PermissionsPushed is true exactly where the triggers of groups and
// permissions are in place on all seven tables: installed by notify (also
// into a database made by an older token_auth, whose tables create adds),
// or found; not where only the triggers of tokens are (an install from
// before require), nor where one is disabled.
func TestPermissionsPushedOnlyWithEveryPermissionTrigger(t *testing.T) {
	ctx := context.Background()
	dsn := freshDatabase(t, testDSN(t))
	conn := admin(t, dsn)
	pushed := func(t *testing.T, cfg map[string]any) (tokens, perms bool) {
		t.Helper()
		cfg["dsn"] = dsn
		s, err := load(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		stop, p := s.Watch(func() {}, nil)
		stop()
		return p, s.PermissionsPushed()
	}
	exec := func(t *testing.T, stmts ...string) {
		t.Helper()
		for _, q := range stmts {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}

	// A database as an older token_auth made it, with its triggers: the
	// two tables alone.
	for _, stmt := range append(append([]string{}, ddlAuthUser...), ddlToken...) {
		exec(t, stmt)
	}
	exec(t, `CREATE FUNCTION token_auth_notify() RETURNS trigger LANGUAGE plpgsql AS $token_auth$`+notifyBody+`$token_auth$`,
		`CREATE TRIGGER token_auth_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON authtoken_token FOR EACH STATEMENT EXECUTE FUNCTION token_auth_notify()`,
		`CREATE TRIGGER token_auth_notify AFTER UPDATE OF id, username, is_active OR DELETE OR TRUNCATE ON auth_user FOR EACH STATEMENT EXECUTE FUNCTION token_auth_notify()`)
	if tokens, perms := pushed(t, map[string]any{}); !tokens || perms {
		t.Errorf("the triggers of tokens alone: pushed %v, permissions pushed %v; want true, false", tokens, perms)
	}
	// notify without create: no tables of permissions to put triggers on.
	if tokens, perms := pushed(t, map[string]any{"notify": true}); !tokens || perms {
		t.Errorf("notify, no tables of permissions: pushed %v, permissions pushed %v; want true, false", tokens, perms)
	}
	// create adds the tables, notify their triggers.
	if tokens, perms := pushed(t, map[string]any{"notify": true, "create": true}); !tokens || !perms {
		t.Errorf("notify and create: pushed %v, permissions pushed %v; want true, true", tokens, perms)
	}
	if tokens, perms := pushed(t, map[string]any{}); !tokens || !perms {
		t.Errorf("every trigger found: pushed %v, permissions pushed %v; want true, true", tokens, perms)
	}
	for _, c := range []struct{ table, trigger string }{
		{"auth_user", flagsTrigger},
		{"auth_user_groups", notifyTrigger},
		{"django_content_type", notifyTrigger},
	} {
		exec(t, `ALTER TABLE `+c.table+` DISABLE TRIGGER `+c.trigger)
		if tokens, perms := pushed(t, map[string]any{}); !tokens || perms {
			t.Errorf("%s on %s disabled: pushed %v, permissions pushed %v; want true, false", c.trigger, c.table, tokens, perms)
		}
		exec(t, `ALTER TABLE `+c.table+` ENABLE TRIGGER `+c.trigger)
	}
}
