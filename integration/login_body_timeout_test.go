package integration

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// Through a real Caddy (its idle-timeout reader and response wrappers in
// between), a login body dripped slower than body_timeout is answered 408
// and its connection closed, long before the client would finish.
func TestLoginBodyTimeoutThroughCaddy(t *testing.T) {
	s := newSite(t)
	loginStartCaddy(t, globalOptions, djangoDB{kind: "sqlite", path: s.dbPath},
		"\t\tlogin "+loginPath+" {\n\t\t\tbody_timeout 300ms\n\t\t}")
	conn, err := net.Dial("tcp", "127.0.0.1:9080")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST "+loginPath+" HTTP/1.1\r\nHost: localhost:9080\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a byte every 100 ms for up to 3 s, never finishing
		for range 30 {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := io.WriteString(conn, "{"); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a dripped body within 10 s: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	if resp.StatusCode != http.StatusRequestTimeout || string(body) != `{"detail":"The request body was not received in time."}` || !resp.Close {
		t.Fatalf("got %d %s (close %v)", resp.StatusCode, body, resp.Close)
	}
	if took > 3*time.Second {
		t.Fatalf("answered after %v: the deadline did not cut the body off", took)
	}
}
