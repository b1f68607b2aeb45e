package tokenauth

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokenauth/caddy-tokenauth/store"
)

func init() {
	caddy.RegisterModule(lookupOnlyStore{})
}

// lookupOnlyStore is a store module with the request path only: no
// store.Logins, no store.Admin.
type lookupOnlyStore struct{}

func (lookupOnlyStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  store.Namespace + ".lookup_only",
		New: func() caddy.Module { return new(lookupOnlyStore) },
	}
}

func (lookupOnlyStore) Lookup(context.Context, string) (store.Identity, error) {
	return store.Identity{}, store.ErrNotFound
}

// Login and logout need store.Logins, and only they do: a store with
// Lookup alone serves a plain token check, and a config that asks it for
// login or logout is refused at Provision, naming the store.
func TestProvisionRequiresLoginsOnlyForLoginAndLogout(t *testing.T) {
	const refusal = "token store lookup_only cannot serve login/logout: it does not implement store.Logins"
	tests := []struct {
		name    string
		h       TokenAuth
		wantErr string
	}{
		{"token check only", TokenAuth{}, ""},
		{"login", TokenAuth{Login: &Login{Path: "/login"}}, refusal},
		{"logout", TokenAuth{Logout: "/logout"}, refusal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			h.StoreRaw = json.RawMessage(`{"kind":"lookup_only"}`)
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := h.Provision(ctx)
			defer h.Cleanup()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Provision: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Provision error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
