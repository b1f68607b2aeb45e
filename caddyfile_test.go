package tokenauth

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
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
		{"tokens knox block", "token_auth {\n tokens knox {\n ttl 10h\n limit_per_user 3\n auto_refresh\n max_ttl 7d\n min_refresh_interval 30s\n prefix myapp_\n }\n logout_all /out/all/\n}",
			`{"logout_all":"/out/all/","tokens":{"kind":"knox","ttl":36000000000000,"limit_per_user":3,"auto_refresh":true,"max_ttl":604800000000000,"min_refresh_interval":30000000000,"prefix":"myapp_"}}`},
		{"tokens knox ttl none", "token_auth {\n tokens knox {\n ttl none\n }\n}", `{"tokens":{"kind":"knox","never_expire":true}}`},
		{"tokens knox bare", "token_auth {\n tokens knox\n}", `{"tokens":{"kind":"knox"}}`},
		{"tokens drf max_age", "token_auth {\n tokens drf {\n max_age 30d\n }\n}", `{"tokens":{"kind":"drf","max_age":2592000000000000}}`},
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
		{"optional with argument", "token_auth {\n\toptional yes\n}", []string{`optional "yes": want nothing, or read_only`, "Testfile:2"}},
		{"optional read_only with argument", "token_auth {\n\toptional read_only yes\n}", []string{"wrong argument count", "Testfile:2"}},
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
		{"tokens without kind", "token_auth {\n\ttokens\n}", []string{"wrong argument count", "Testfile:2"}},
		{"tokens unknown kind", "token_auth {\n\ttokens jwt\n}", []string{"want drf or knox", "Testfile:2"}},
		{"tokens unknown option", "token_auth {\n\ttokens knox {\n\t\trotate\n\t}\n}", []string{"unrecognized tokens option 'rotate'", "Testfile:3"}},
		{"tokens drf with a knox option", "token_auth {\n\ttokens drf {\n\t\tttl 1h\n\t}\n}", []string{"knox settings", "Testfile:3"}},
		{"tokens knox with max_age", "token_auth {\n\ttokens knox {\n\t\tmax_age 1h\n\t}\n}", []string{"max_age is a drf setting", "Testfile:3"}},
		{"tokens prefix too long", "token_auth {\n\ttokens knox {\n\t\tprefix abcdefghijk\n\t}\n}", []string{"at most 10", "Testfile:3"}},
		{"tokens zero limit", "token_auth {\n\ttokens knox {\n\t\tlimit_per_user 0\n\t}\n}", []string{"limit_per_user", "Testfile:3"}},
		{"tokens zero ttl", "token_auth {\n\ttokens knox {\n\t\tttl 0s\n\t}\n}", []string{"positive duration", "Testfile:3"}},
		{"auto_refresh without ttl", "token_auth {\n\ttokens knox {\n\t\tttl none\n\t\tauto_refresh\n\t}\n}", []string{"auto_refresh needs a ttl", "Testfile:4"}},
		{"logout_all with drf tokens", "token_auth {\n\tlogout_all /all\n}", []string{"logout_all needs tokens knox", "Testfile:2"}},
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

// The Caddyfile and the JSON refuse exactly the same configs, with the
// same rule's message: validate() holds the rules and both go through it
// (the Caddyfile after each option, Provision before anything else).
func TestCaddyfileAndJSONRefuseTheSameConfigs(t *testing.T) {
	tests := []struct {
		name      string
		caddyfile string // the block's options
		json      string // the same config as JSON
		want      string // in both errors; "" for a config both accept
	}{
		{"bad keyword", "keyword Tök", `{"keyword":"Tök"}`, "keyword"},
		{"keyword with a control character", "keyword \"To\x01ken\"", `{"keyword":"To\u0001ken"}`, "keyword"},
		{"bad key_format", "key_format uuid", `{"key_format":"uuid"}`, "want hex40 or any"},
		{"bad failure_throttle", "failure_throttle many", `{"failure_throttle":"many"}`, "failure_throttle"},
		{"failure_throttle of zero requests", "failure_throttle 0/min", `{"failure_throttle":"0/min"}`, "failure_throttle"},
		{"relative logout path", "logout api/logout/", `{"logout":"api/logout/"}`, "must start with /"},
		{"relative login path", "login api/login/", `{"login":{"path":"api/login/"}}`, "must start with /"},
		{"login and logout on one path", "login /a\n logout /a", `{"login":{"path":"/a"},"logout":"/a"}`, "share the path"},
		{"bad login throttle", "login /l {\n throttle 5/fortnight\n }", `{"login":{"path":"/l","throttle":"5/fortnight"}}`, "login throttle"},
		{"max_body over 1GiB", "login /l {\n max_body 2GiB\n }", `{"login":{"path":"/l","max_body":2147483648}}`, "up to 1GiB"},
		{"negative body_timeout", "login /l {\n body_timeout -1s\n }", `{"login":{"path":"/l","body_timeout":-1000000000}}`, "body_timeout"},
		{"negative cache ttl", "cache {\n ttl -1s\n }", `{"cache":{"ttl":-1000000000}}`, "positive duration"},
		{"negative cache negative_ttl", "cache {\n negative_ttl -1s\n }", `{"cache":{"negative_ttl":-1000000000}}`, "positive duration"},
		{"negative cache size", "cache {\n size -5\n }", `{"cache":{"size":-5}}`, "positive number"},
		{"cache off with a ttl", "cache off {\n ttl 1s\n }", `{"cache":{"off":true,"ttl":1000000000}}`, "off takes no"},
		{"cache off with a size", "cache off {\n size 10\n }", `{"cache":{"off":true,"size":10}}`, "off takes no"},
		{"sqlite: negative query_timeout", "store sqlite {\n query_timeout -1s\n }", `{"store":{"kind":"sqlite","query_timeout":-1000000000}}`, "query_timeout must be positive"},
		{"postgres: negative query_timeout", "store postgres {\n dsn postgres://h/db\n query_timeout -1s\n }", `{"store":{"kind":"postgres","dsn":"postgres://h/db","query_timeout":-1000000000}}`, "query_timeout must be positive"},
		{"postgres: negative max_conns", "store postgres {\n dsn postgres://h/db\n max_conns -1\n }", `{"store":{"kind":"postgres","dsn":"postgres://h/db","max_conns":-1}}`, "max_conns must not be negative"},
		{"postgres: schema not an identifier", "store postgres {\n dsn postgres://h/db\n schema a;b\n }", `{"store":{"kind":"postgres","dsn":"postgres://h/db","schema":"a;b"}}`, "not a plain SQL identifier"},
		{"valid: everything set", "keyword Bearer\n key_format any\n failure_throttle 20/min\n logout /out\n login /in {\n throttle 5/min\n max_body 1GiB\n body_timeout 2s\n }\n cache {\n ttl 1m\n negative_ttl 2s\n size 10\n }",
			`{"keyword":"Bearer","key_format":"any","failure_throttle":"20/min","logout":"/out","login":{"path":"/in","throttle":"5/min","max_body":1073741824,"body_timeout":2000000000},"cache":{"ttl":60000000000,"negative_ttl":2000000000,"size":10}}`, ""},
		{"valid: cache off", "cache off", `{"cache":{"off":true}}`, ""},
		{"tokens: unknown kind", "tokens jwt", `{"tokens":{"kind":"jwt"}}`, "want drf or knox"},
		{"tokens: prefix over 10", "tokens knox {\n prefix abcdefghijk\n }", `{"tokens":{"kind":"knox","prefix":"abcdefghijk"}}`, "at most 10"},
		{"tokens: prefix with a space", "tokens knox {\n prefix \"a b\"\n }", `{"tokens":{"kind":"knox","prefix":"a b"}}`, "visible ASCII"},
		{"tokens: drf with a knox setting", "tokens drf {\n auto_refresh\n }", `{"tokens":{"kind":"drf","auto_refresh":true}}`, "knox settings"},
		{"tokens: knox with max_age", "tokens knox {\n max_age 1h\n }", `{"tokens":{"kind":"knox","max_age":3600000000000}}`, "drf setting"},
		{"tokens: negative ttl", "tokens knox {\n ttl -1s\n }", `{"tokens":{"kind":"knox","ttl":-1000000000}}`, "positive duration"},
		{"tokens: ttl none and a ttl", "tokens knox {\n ttl none\n ttl 1s\n }", `{"tokens":{"kind":"knox","ttl":1000000000,"never_expire":true}}`, "ttl"},
		{"tokens: auto_refresh without ttl", "tokens knox {\n ttl none\n auto_refresh\n }", `{"tokens":{"kind":"knox","never_expire":true,"auto_refresh":true}}`, "auto_refresh needs a ttl"},
		{"tokens: negative limit", "tokens knox {\n limit_per_user -1\n }", `{"tokens":{"kind":"knox","limit_per_user":-1}}`, "limit_per_user"},
		{"logout_all: drf tokens", "logout_all /all", `{"logout_all":"/all"}`, "needs tokens knox"},
		{"logout_all: relative path", "tokens knox\n logout_all all", `{"tokens":{"kind":"knox"},"logout_all":"all"}`, "must start with /"},
		{"logout_all: on the logout path", "tokens knox\n logout /o\n logout_all /o", `{"tokens":{"kind":"knox"},"logout":"/o","logout_all":"/o"}`, "shares its path"},
		{"valid: tokens knox, everything set", "tokens knox {\n ttl 1h\n limit_per_user 2\n auto_refresh\n max_ttl 2h\n min_refresh_interval 5s\n prefix p_\n }\n login /in\n logout /out\n logout_all /all",
			`{"tokens":{"kind":"knox","ttl":3600000000000,"limit_per_user":2,"auto_refresh":true,"max_ttl":7200000000000,"min_refresh_interval":5000000000,"prefix":"p_"},"login":{"path":"/in"},"logout":"/out","logout_all":"/all"}`, ""},
		{"valid: tokens drf max_age", "tokens drf {\n max_age 30d\n }", `{"tokens":{"kind":"drf","max_age":2592000000000000}}`, ""},
	}
	path := newFixture(t, nil, nil).path
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fromFile TokenAuth
			cfErr := fromFile.UnmarshalCaddyfile(caddyfile.NewTestDispenser("token_auth {\n " + tt.caddyfile + "\n}"))

			var fromJSON TokenAuth
			if err := json.Unmarshal([]byte(tt.json), &fromJSON); err != nil {
				t.Fatal(err)
			}
			if fromJSON.StoreRaw == nil {
				fromJSON.StoreRaw = json.RawMessage(`{"kind":"sqlite","path":"` + path + `","create":true}`)
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			jsonErr := fromJSON.Provision(ctx)
			fromJSON.Cleanup()
			cancel()

			for what, err := range map[string]error{"Caddyfile": cfErr, "JSON": jsonErr} {
				switch {
				case tt.want == "" && err != nil:
					t.Errorf("%s refused a valid config: %v", what, err)
				case tt.want != "" && err == nil:
					t.Errorf("%s accepted it", what)
				case tt.want != "" && !strings.Contains(err.Error(), tt.want):
					t.Errorf("%s: %v, want an error with %q", what, err, tt.want)
				}
			}
			if tt.want == "" {
				got, _ := json.Marshal(fromFile)
				var want TokenAuth
				_ = json.Unmarshal([]byte(tt.json), &want)
				if w, _ := json.Marshal(want); string(got) != string(w) {
					t.Errorf("the Caddyfile gives %s, want %s", got, w)
				}
			}
		})
	}
}

// Every single-valued option refuses a repeat, at the repeat's line.
func TestCaddyfileRefusesRepeatedOptions(t *testing.T) {
	for _, opt := range []string{"tokens knox", "keyword Token", "logout /out", "key_format any", "failure_throttle 5/min", "optional", "no_challenge", "store sqlite", "login /in", "cache off"} {
		name, _, _ := strings.Cut(opt, " ")
		in := "token_auth {\n\t" + opt + "\n\t" + opt + "\n}"
		var h TokenAuth
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), name+" already specified") || !strings.Contains(err.Error(), "Testfile:3") {
			t.Errorf("%s twice: %v, want %q at line 3", name, err, name+" already specified")
		}
	}
	in := "token_auth {\n\ttokens knox\n\tlogout_all /all\n\tlogout_all /all\n}"
	var h TokenAuth
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil || !strings.Contains(err.Error(), "logout_all already specified") || !strings.Contains(err.Error(), "Testfile:4") {
		t.Errorf("logout_all twice: %v", err)
	}
	for _, tt := range []struct{ block, opt, val string }{
		{"login /in", "throttle", "5/min"}, {"login /in", "max_body", "1KiB"}, {"login /in", "body_timeout", "1s"}, {"login /in", "upgrade_hashes", ""},
		{"cache", "ttl", "1s"}, {"cache", "negative_ttl", "1s"}, {"cache", "size", "5"},
		{"tokens knox", "ttl", "1h"}, {"tokens knox", "limit_per_user", "2"}, {"tokens knox", "auto_refresh", ""},
		{"tokens knox", "max_ttl", "1h"}, {"tokens knox", "min_refresh_interval", "1s"}, {"tokens knox", "prefix", "p"},
		{"tokens drf", "max_age", "1h"},
	} {
		in := "token_auth {\n\t" + tt.block + " {\n\t\t" + tt.opt + " " + tt.val + "\n\t\t" + tt.opt + " " + tt.val + "\n\t}\n}"
		var h TokenAuth
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), tt.opt+" already specified") || !strings.Contains(err.Error(), "Testfile:4") {
			t.Errorf("%s %s twice: %v", tt.block, tt.opt, err)
		}
	}
}

// A store's options refuse a repeat too, at the repeat's line.
func TestCaddyfileRefusesRepeatedStoreOptions(t *testing.T) {
	for _, tt := range []struct{ kind, opt string }{
		{"sqlite", "path /a"}, {"sqlite", "create"}, {"sqlite", "query_timeout 1s"},
		{"postgres", "dsn postgres://h/db"}, {"postgres", "max_conns 5"}, {"postgres", "query_timeout 1s"},
		{"postgres", "schema app"}, {"postgres", "create"}, {"postgres", "notify"},
	} {
		name, _, _ := strings.Cut(tt.opt, " ")
		in := "token_auth {\n\tstore " + tt.kind + " {\n\t\t" + tt.opt + "\n\t\t" + tt.opt + "\n\t}\n}"
		var h TokenAuth
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), name+" already specified") || !strings.Contains(err.Error(), "Testfile:4") {
			t.Errorf("%s %s twice: %v", tt.kind, name, err)
		}
	}
}
