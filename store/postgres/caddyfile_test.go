package postgres

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/tokenauth/caddy-tokenauth/store"
)

func TestModuleIsRegisteredAsPostgresStore(t *testing.T) {
	mod, err := caddy.GetModule(store.Namespace + ".postgres")
	if err != nil {
		t.Fatal(err)
	}
	if mod.ID != "http.token_auth.stores.postgres" {
		t.Errorf("module ID = %s", mod.ID)
	}
	if _, ok := mod.New().(store.Store); !ok {
		t.Error("module is not a store.Store")
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    Postgres
		wantErr string
	}{
		{name: "dsn argument", input: `postgres {env.DATABASE_URL}`,
			want: Postgres{DSN: "{env.DATABASE_URL}"}},
		{name: "key=value dsn argument", input: `postgres "host=db dbname=app"`,
			want: Postgres{DSN: "host=db dbname=app"}},
		{name: "block", input: `postgres {
			dsn           postgres://django@db/app
			max_conns     8
			query_timeout 500ms
			schema        tokens
			create
			notify
		}`, want: Postgres{DSN: "postgres://django@db/app", MaxConns: 8,
			QueryTimeout: caddy.Duration(500 * time.Millisecond), Schema: "tokens", Create: true, Notify: true}},
		{name: "two arguments", input: `postgres a b`, wantErr: "wrong argument count"},
		{name: "unknown option", input: "postgres x {\n bogus 1\n}", wantErr: "unrecognized postgres store option 'bogus'"},
		{name: "max_conns not a number", input: "postgres x {\n max_conns many\n}", wantErr: "max_conns must be a positive integer"},
		{name: "max_conns zero", input: "postgres x {\n max_conns 0\n}", wantErr: "max_conns must be a positive integer"},
		{name: "query_timeout bad", input: "postgres x {\n query_timeout soon\n}", wantErr: "query_timeout"},
		{name: "query_timeout negative", input: "postgres x {\n query_timeout -1s\n}", wantErr: "must be positive"},
		{name: "schema with quote", input: "postgres x {\n schema `a\"b`\n}", wantErr: "not a plain SQL identifier"},
		{name: "schema with semicolon", input: "postgres x {\n schema \"a;drop\"\n}", wantErr: "not a plain SQL identifier"},
		{name: "create with argument", input: "postgres x {\n create yes\n}", wantErr: "wrong argument count"},
		{name: "notify with argument", input: "postgres x {\n notify yes\n}", wantErr: "wrong argument count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Postgres
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestJSONFieldNames(t *testing.T) {
	b, err := json.Marshal(Postgres{DSN: "d", MaxConns: 3, QueryTimeout: caddy.Duration(time.Second), Schema: "s", Create: true, Notify: true})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"dsn":"d","max_conns":3,"query_timeout":1000000000,"schema":"s","create":true,"notify":true}`
	if string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
}

// Configuration errors are refused before any connection is tried.
func TestProvisionRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		s       Postgres
		wantErr string
	}{
		{"schema with a quote", Postgres{DSN: "postgres://127.0.0.1:1/x", Schema: `tok"ens`}, `schema "tok\"ens" is not a plain SQL identifier`},
		{"schema with a semicolon", Postgres{DSN: "postgres://127.0.0.1:1/x", Schema: "a;DROP TABLE auth_user"}, "is not a plain SQL identifier"},
		{"schema with a space", Postgres{DSN: "postgres://127.0.0.1:1/x", Schema: "a b"}, "is not a plain SQL identifier"},
		{"schema starting with a digit", Postgres{DSN: "postgres://127.0.0.1:1/x", Schema: "1abc"}, "is not a plain SQL identifier"},
		{"schema too long", Postgres{DSN: "postgres://127.0.0.1:1/x", Schema: strings.Repeat("a", 64)}, "is not a plain SQL identifier"},
		{"no dsn", Postgres{}, "no dsn"},
		{"dsn placeholder expanding to nothing", Postgres{DSN: "{env.TOKENAUTH_SURELY_UNSET_VARIABLE}"}, "is empty once expanded"},
		{"negative max_conns", Postgres{DSN: "postgres://127.0.0.1:1/x", MaxConns: -1}, "max_conns must not be negative"},
		{"unparsable dsn", Postgres{DSN: "postgres://u:hunter22@127.0.0.1:99999999/x"}, "cannot parse dsn: invalid port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.s
			err := s.provision(context.Background(), zap.NewNop())
			t.Cleanup(func() { _ = s.Cleanup() })
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Provision error = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter22") {
				t.Errorf("Provision error %q holds the password", err)
			}
			if s.poolKey != "" {
				t.Error("a refused config kept a pool reference")
			}
		})
	}
}
