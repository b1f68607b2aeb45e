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
		{"login and logout", "token_auth {\n login /api/auth-token/\n logout /api/logout/\n}", `{"login":{"path":"/api/auth-token/"},"logout":"/api/logout/"}`},
		{"login block", "token_auth {\n login /login {\n throttle 5/min\n max_body 1KiB\n upgrade_hashes\n }\n failure_throttle 20/min\n}",
			`{"login":{"path":"/login","throttle":"5/min","max_body":1024,"upgrade_hashes":true},"failure_throttle":"20/min"}`},
		{"login body_timeout", "token_auth {\n login /login {\n body_timeout 2s\n }\n}", `{"login":{"path":"/login","body_timeout":2000000000}}`},
		{"cache off", "token_auth {\n cache off\n key_format any\n}", `{"cache":{"off":true},"key_format":"any"}`},
		{"cache block", "token_auth {\n cache {\n ttl 1m\n negative_ttl 2s\n size 500\n }\n}", `{"cache":{"ttl":60000000000,"negative_ttl":2000000000,"size":500}}`},
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
		{"login without path", "token_auth {\n\tlogin\n}", []string{"wrong argument count", "Testfile:2"}},
		{"two logins", "token_auth {\n\tlogin /a\n\tlogin /b\n}", []string{"login already specified", "Testfile:3"}},
		{"bad throttle rate", "token_auth {\n\tlogin /a {\n\t\tthrottle 5/fortnight\n\t}\n}", []string{"period must start with s, m, h or d", "Testfile:3"}},
		{"unknown login option", "token_auth {\n\tlogin /a {\n\t\tremember_me\n\t}\n}", []string{"unrecognized login option 'remember_me'", "Testfile:3"}},
		{"bad max_body", "token_auth {\n\tlogin /a {\n\t\tmax_body lots\n\t}\n}", []string{"max_body", "Testfile:3"}},
		{"bad body_timeout", "token_auth {\n\tlogin /l {\n\t\tbody_timeout 0s\n\t}\n}", []string{"body_timeout", "Testfile:3"}},
		{"bad failure_throttle", "token_auth {\n\tfailure_throttle many\n}", []string{"failure_throttle", "Testfile:2"}},
		{"cache on", "token_auth {\n\tcache on\n}", []string{"want off", "Testfile:2"}},
		{"unknown cache option", "token_auth {\n\tcache {\n\t\tlru yes\n\t}\n}", []string{"unrecognized cache option 'lru'", "Testfile:3"}},
		{"bad cache ttl", "token_auth {\n\tcache {\n\t\tttl -1s\n\t}\n}", []string{"positive duration", "Testfile:3"}},
		{"bad key_format", "token_auth {\n\tkey_format uuid\n}", []string{"want hex40 or any", "Testfile:2"}},
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
