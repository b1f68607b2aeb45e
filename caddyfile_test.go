package tokenauth

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string // JSON of the handler
	}{
		{"bare directive", `token_auth`, `{}`},
		{"empty block", "token_auth {\n}", `{}`},
		{"sqlite path", "token_auth {\n store sqlite /srv/db.sqlite3\n}", `{"store":{"kind":"sqlite","path":"/srv/db.sqlite3"}}`},
		{"sqlite embedded", "token_auth {\n store sqlite\n}", `{"store":{"kind":"sqlite"}}`},
		{"sqlite block", "token_auth {\n store sqlite {\n path {env.DB}\n create\n query_timeout 500ms\n }\n}",
			`{"store":{"create":true,"kind":"sqlite","path":"{env.DB}","query_timeout":500000000}}`},
		{"all options", "token_auth {\n keyword Bearer\n optional\n no_challenge\n}", `{"keyword":"Bearer","optional":true,"no_challenge":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h TokenAuth
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(h)
			if string(got) != tt.want {
				t.Errorf("got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestUnmarshalCaddyfileErrorsNameTheProblemAndLine(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"unknown option", "token_auth {\n\tstore sqlite\n\tfrobnicate yes\n}", []string{"unrecognized token_auth option 'frobnicate'", "Testfile:3"}},
		{"argument on directive", "token_auth extra", []string{"wrong argument count", "Testfile:1"}},
		{"store without kind", "token_auth {\n\tstore\n}", []string{"wrong argument count", "Testfile:2"}},
		{"unknown store kind", "token_auth {\n\n\tstore mysql localhost\n}", []string{"unknown store kind 'mysql'", "sqlite", "Testfile:3"}},
		{"two stores", "token_auth {\n\tstore sqlite\n\tstore sqlite /x\n}", []string{"store already specified", "Testfile:3"}},
		{"keyword without word", "token_auth {\n\tkeyword\n}", []string{"wrong argument count", "Testfile:2"}},
		{"keyword with two words", "token_auth {\n\tkeyword A B\n}", []string{"wrong argument count", "Testfile:2"}},
		{"keyword with non-ASCII", "token_auth {\n\tkeyword Tök\n}", []string{"keyword", "Testfile:2"}},
		{"optional with argument", "token_auth {\n\toptional yes\n}", []string{"wrong argument count", "Testfile:2"}},
		{"sqlite unknown option", "token_auth {\n\tstore sqlite {\n\t\tpth /x\n\t}\n}", []string{"unrecognized sqlite store option 'pth'", "Testfile:3"}},
		{"sqlite two paths", "token_auth {\n\tstore sqlite /a /b\n}", []string{"wrong argument count", "Testfile:2"}},
		{"sqlite bad timeout", "token_auth {\n\tstore sqlite {\n\t\tquery_timeout soon\n\t}\n}", []string{"query_timeout", "Testfile:3"}},
		{"sqlite zero timeout", "token_auth {\n\tstore sqlite {\n\t\tquery_timeout 0s\n\t}\n}", []string{"must be positive", "Testfile:3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h TokenAuth
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
