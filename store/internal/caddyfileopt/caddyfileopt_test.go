package caddyfileopt

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// opts is what a store's block sets, read as a store module reads it.
type opts struct {
	Path    string
	Create  bool
	Timeout caddy.Duration
}

func parse(input string) (opts, error) {
	var o opts
	d := caddyfile.NewTestDispenser(input)
	err := Block(d, "test", "path", &o.Path, Options{
		"create":        func() error { return Flag(d, &o.Create) },
		"query_timeout": func() error { return PositiveDuration(d, &o.Timeout) },
	}, func() error {
		if o.Path == "/forbidden" {
			return errors.New("path /forbidden is forbidden")
		}
		return nil
	})
	return o, err
}

func TestBlock(t *testing.T) {
	tests := []struct {
		name, input string
		want        opts
		wantErr     string
	}{
		{"argument", `test /a`, opts{Path: "/a"}, ""},
		{"no argument, no block", `test`, opts{}, ""},
		{"option naming the argument", "test {\n path /b\n}", opts{Path: "/b"}, ""},
		{"every option", "test /a {\n create\n query_timeout 150ms\n}", opts{Path: "/a", Create: true, Timeout: caddy.Duration(150 * time.Millisecond)}, ""},
		{"two arguments", `test /a /b`, opts{}, "wrong argument count"},
		{"argument option without its argument", "test {\n path\n}", opts{}, "wrong argument count"},
		{"flag with an argument", "test {\n create yes\n}", opts{}, "wrong argument count"},
		{"duration missing", "test {\n query_timeout\n}", opts{}, "wrong argument count"},
		{"duration unreadable", "test {\n query_timeout soon\n}", opts{}, `query_timeout "soon": `},
		{"duration zero", "test {\n query_timeout 0s\n}", opts{}, "query_timeout must be positive, got 0s"},
		{"duration negative", "test {\n query_timeout -1s\n}", opts{}, "query_timeout must be positive, got -1s"},
		{"duration with two arguments", "test {\n query_timeout 1s 2s\n}", opts{}, "wrong argument count"},
		{"unknown option", "test {\n bogus\n}", opts{}, "unrecognized test store option 'bogus'"},
		{"option twice", "test {\n create\n create\n}", opts{}, "create already specified, at Testfile:3"},
		{"argument on the line and in the block", "test /a {\n path /b\n}", opts{}, "path already specified, at Testfile:2"},
		{"argument option twice", "test {\n path /a\n path /b\n}", opts{}, "path already specified, at Testfile:3"},
		{"argument option with two arguments", "test {\n path /a /b\n}", opts{}, "wrong argument count"},
		{"check after each option, at its line", "test {\n create\n path /forbidden\n query_timeout 1s\n}", opts{}, "path /forbidden is forbidden, at Testfile:3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(tt.input)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
