package postgres

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestRedactDSNMasksEveryPassword(t *testing.T) {
	tests := []struct {
		name, dsn, want string
		secret          string // must be gone from the result
	}{
		{"url with password", "postgres://django:s3cret@db.example:5432/app?sslmode=require",
			"postgres://django:xxxxx@db.example:5432/app?sslmode=require", "s3cret"},
		{"postgresql scheme", "postgresql://django:s3cret@db/app",
			"postgresql://django:xxxxx@db/app", "s3cret"},
		{"url percent-encoded password", "postgres://django:p%40ss%2Fw0rd@db/app",
			"postgres://django:xxxxx@db/app", "p%40ss%2Fw0rd"},
		{"url password in query", "postgres://db/app?user=django&password=s3cret&sslmode=disable",
			"postgres://db/app?user=django&password=xxxxx&sslmode=disable", "s3cret"},
		{"url sslpassword in query", "postgres://django@db/app?sslpassword=k3ypass",
			"postgres://django@db/app?sslpassword=xxxxx", "k3ypass"},
		{"url without password", "postgres://postgres@127.0.0.1:5432/tokenauth?sslmode=disable",
			"postgres://postgres@127.0.0.1:5432/tokenauth?sslmode=disable", ""},
		{"url user without password", "postgres://django:@db/app", "postgres://django:xxxxx@db/app", ""},
		{"unparsable url", "postgres://django:s3c ret@db:notaport/app",
			"postgres://django:xxxxx@db:notaport/app", "s3c ret"},
		{"unparsable url with @ in password", "postgres://django:s3@cret@db:x/app",
			"postgres://django:xxxxx@db:x/app", "s3@cret"},
		{"key=value", "host=db user=django password=s3cret dbname=app",
			"host=db user=django password=xxxxx dbname=app", "s3cret"},
		{"key=value spaced", "host=db password = s3cret dbname=app",
			"host=db password = xxxxx dbname=app", "s3cret"},
		{"key=value quoted", `host=db password='s3 c\'ret' dbname=app`,
			"host=db password=xxxxx dbname=app", "s3 c"},
		{"key=value sslpassword", "host=db sslpassword=k3ypass", "host=db sslpassword=xxxxx", "k3ypass"},
		{"key=value without password", "host=db dbname=app", "host=db dbname=app", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := redactDSN(tt.dsn)
			if got != tt.want {
				t.Errorf("redactDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
			}
			if tt.secret != "" && strings.Contains(got, tt.secret) {
				t.Errorf("redactDSN(%q) = %q still holds %q", tt.dsn, got, tt.secret)
			}
		})
	}
}

func TestRedactDSNReturnsDecodedSecrets(t *testing.T) {
	tests := []struct {
		dsn  string
		want []string // each must be among the secrets
	}{
		{"postgres://django:p%40ss%2Fw0rd@db/app", []string{"p@ss/w0rd", "p%40ss%2Fw0rd"}},
		{"postgres://db/app?password=a%20b%2Bc", []string{"a b+c", "a%20b%2Bc"}},
		{`password='it\'s s3cret'`, []string{`it's s3cret`, `'it\'s s3cret'`}},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			_, secrets := redactDSN(tt.dsn)
			for _, w := range tt.want {
				found := false
				for _, s := range secrets {
					found = found || s == w
				}
				if !found {
					t.Errorf("secrets of %q = %q, missing %q", tt.dsn, secrets, w)
				}
			}
		})
	}
}

func TestScrubErrorKeepsTheChain(t *testing.T) {
	base := errors.New("sentinel")
	err := fmt.Errorf("connecting with hunter22 failed: %w", base)
	got := scrubError(err, []string{"hunter22"})
	if strings.Contains(got.Error(), "hunter22") {
		t.Errorf("scrubbed error %q still holds the password", got)
	}
	if got.Error() != "connecting with xxxxx failed: sentinel" {
		t.Errorf("scrubbed error = %q", got)
	}
	if !errors.Is(got, base) {
		t.Error("scrubbed error no longer wraps the original")
	}
	if scrubError(nil, []string{"x"}) != nil {
		t.Error("scrubError(nil) != nil")
	}
}

// pgx's own parse errors redact only on a best-effort basis, and the
// net/url errors they wrap quote the whole string: parseError must not
// repeat the password in any of these.
func TestParseErrorNeverHoldsThePassword(t *testing.T) {
	tests := []struct{ name, dsn, secret string }{
		{"bad port", "postgres://django:s3cretpw@db:99999999/app", "s3cretpw"},
		{"bad percent-encoding in password", "postgres://django:s3cret%zzpw@db/app", "s3cret%zzpw"},
		{"bad escape in url", "postgres://django:s3cretpw@db/app?sslmode=%zz", "s3cretpw"},
		{"key=value unterminated quote", "host=db password='s3cretpw dbname=app", "s3cretpw"},
		{"key=value bad port", "host=db port=notaport password=s3cretpw", "s3cretpw"},
		{"key=value bad sslmode", "host=db sslmode=bogus password=s3cretpw", "s3cretpw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := pgconn.ParseConfig(tt.dsn); err == nil {
				t.Skipf("pgx parses %q", tt.dsn)
			}
			redacted, _ := redactDSN(tt.dsn)
			err := parseError(tt.dsn, redacted)
			if err == nil {
				t.Fatal("parseError = nil")
			}
			t.Log(err)
			if strings.Contains(err.Error(), tt.secret) {
				t.Errorf("parseError = %q, holds the password", err)
			}
			if !strings.Contains(err.Error(), "cannot parse dsn") {
				t.Errorf("parseError = %q, want it to say it cannot parse the dsn", err)
			}
		})
	}
}
