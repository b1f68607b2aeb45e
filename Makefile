.PHONY: build run test bench fuzz mutants clean

# A Caddy with token_auth and the standard modules, as bin/caddy.
build:
	go build -o bin/caddy ./cmd/caddy

# Build, create a demo user and token, serve example.Caddyfile on localhost.
run:
	bash scripts/demo.sh

# Every test, as CI runs it (installs missing Debian packages as root).
test:
	bash scripts/test.sh

# Go benchmarks of the request path.
bench:
	go test -run '^$$' -bench . -benchmem . ./internal/...

# Fuzz the header parser for a minute.
fuzz:
	go test -run '^$$' -fuzz FuzzParseAuthorization -fuzztime 60s .

# One deliberate bug at a time, each followed by the tests that should
# catch it (scripts/mutants/*.txt); not run by CI.
mutants:
	bash scripts/mutants.sh

clean:
	rm -rf bin .demo
