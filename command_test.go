package tokenauth

import (
	"strings"
	"testing"
)

func TestParseStoreSpec(t *testing.T) {
	tests := []struct {
		spec, want, fail string
	}{
		{"sqlite:/srv/db.sqlite3", `{"kind":"sqlite","path":"/srv/db.sqlite3"}`, ""},
		{"postgres://u:secret@db/app", `{"dsn":"postgres://u:secret@db/app","kind":"postgres"}`, ""},
		{"postgresql://db/app", `{"dsn":"postgresql://db/app","kind":"postgres"}`, ""},
		{"mysql://u:secret@db/app", "", "want sqlite:<path> or postgres://"},
	}
	for _, tt := range tests {
		got, err := parseStoreSpec(tt.spec)
		if tt.fail != "" {
			if err == nil || !strings.Contains(err.Error(), tt.fail) {
				t.Errorf("%q: error %v", tt.spec, err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("%q: the error shows the password: %v", tt.spec, err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%q: got %s, %v", tt.spec, got, err)
		}
	}
}

func TestStoreFromConfig(t *testing.T) {
	handler := func(store string) string {
		if store == "" {
			return `{"handler":"token_auth"}`
		}
		return `{"handler":"token_auth","store":` + store + `}`
	}
	routes := func(handlers ...string) string {
		return `{"apps":{"http":{"servers":{"srv0":{"routes":[{"handle":[` + strings.Join(handlers, ",") + `]}]}}}}}`
	}
	pg := `{"kind":"postgres","dsn":"postgres://db/app"}`
	tests := []struct {
		name, cfg, want, fail string
	}{
		{"no handler", routes(`{"handler":"file_server"}`), "", "no token_auth handler"},
		{"default store", routes(handler("")), `{"kind":"sqlite"}`, ""},
		{"one store twice", routes(handler(pg), handler(pg)), `{"dsn":"postgres://db/app","kind":"postgres"}`, ""},
		{"two stores", routes(handler(pg), handler("")), "", "different stores"},
	}
	for _, tt := range tests {
		got, err := storeFromConfig([]byte(tt.cfg))
		if tt.fail != "" {
			if err == nil || !strings.Contains(err.Error(), tt.fail) {
				t.Errorf("%s: error %v", tt.name, err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: got %s, %v", tt.name, got, err)
		}
	}
}
