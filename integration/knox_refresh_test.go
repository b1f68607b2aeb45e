package integration

// knox's AUTO_REFRESH in Caddy: the expiry moves as knox moves it (to now
// + ttl, capped at created + max_ttl, written only when it moves by more
// than min_refresh_interval), compared with the real knox on a copy of the
// same database; and under 1,000 requests of one token in a minute Caddy
// writes the row at most twice.

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// knoxSetTimes sets a row's created and expiry (nil: NULL) as Django
// stores them.
func knoxSetTimes(t *testing.T, db djangoDB, digest string, created time.Time, expiry *time.Time) {
	t.Helper()
	lit := func(at *time.Time) string {
		if at == nil {
			return "NULL"
		}
		u := at.UTC().Truncate(time.Microsecond)
		if db.kind == "postgres" {
			return "'" + u.Format("2006-01-02 15:04:05.999999") + "+00'"
		}
		if u.Nanosecond() == 0 {
			return "'" + u.Format("2006-01-02 15:04:05") + "'"
		}
		return "'" + u.Format("2006-01-02 15:04:05.000000") + "'"
	}
	knoxExec(t, db, fmt.Sprintf(`UPDATE knox_authtoken SET created = %s, expiry = %s WHERE digest = %s`,
		lit(&created), lit(expiry), knoxQuote(digest)))
}

// knoxRefreshToken is a token of the refresh test, its times relative to
// the moment they are written.
type knoxRefreshToken struct {
	name    string
	user    string
	created time.Duration  // from now
	expiry  *time.Duration // from now; nil: NULL
	uses    int
	status  int            // knox's answer
	moves   bool           // knox writes a new expiry
	to      *time.Duration // the new expiry from created (the cap), or nil: the request's now + ttl
}

func knoxDur(d time.Duration) *time.Duration { return &d }

func TestKnoxRefreshParity(t *testing.T) {
	knoxRequire(t)
	djangoEachStore(t, testKnoxRefreshParity)
}

func testKnoxRefreshParity(t *testing.T, kind string) {
	s := knoxSettings{AutoRefresh: true, TTL: time.Hour, MaxTTL: 3 * time.Hour}
	plan := []knoxRefreshToken{
		{"expiry moves to now + ttl", "alice", 0, knoxDur(10 * time.Minute), 1, 200, true, nil},
		{"within min_refresh_interval", "alice", 0, knoxDur(time.Hour - 30*time.Second), 1, 200, false, nil},
		{"just past min_refresh_interval", "alice", 0, knoxDur(time.Hour - 90*time.Second), 1, 200, true, nil},
		{"capped at created + max_ttl", "alice", -150 * time.Minute, knoxDur(10 * time.Minute), 1, 200, true, knoxDur(3 * time.Hour)},
		{"cap in the past", "alice", -4 * time.Hour, knoxDur(10 * time.Minute), 1, 200, false, nil},
		{"cap at the expiry", "alice", -170 * time.Minute, knoxDur(10 * time.Minute), 1, 200, false, nil},
		{"never expires", "alice", -time.Hour, nil, 1, 200, false, nil},
		{"expired", "alice", -2 * time.Hour, knoxDur(-time.Minute), 1, 401, false, nil},
		{"inactive user's, refreshed then refused", "bob", 0, knoxDur(10 * time.Minute), 1, 401, true, nil},
		{"used twice, written once", "carol", 0, knoxDur(10 * time.Minute), 2, 200, true, nil},
	}
	seed := knoxNewDB(t, kind)
	knoxCreateUsers(t, seed,
		djangoUser{Username: "alice", Active: true},
		djangoUser{Username: "bob", Active: false},
		djangoUser{Username: "carol", Active: true})
	var news []knoxNewToken
	for _, p := range plan {
		news = append(news, knoxNewToken{Username: p.user})
	}
	tk := knoxCreateTokens(t, seed, s, news...)

	// prepare writes the planned times relative to now and returns the
	// requests, in order (each token's uses one after the other).
	prepare := func(db djangoDB) (at time.Time, reqs []knoxRequest, owner []int) {
		at = time.Now().UTC().Truncate(time.Microsecond)
		for i, p := range plan {
			var exp *time.Time
			if p.expiry != nil {
				e := at.Add(*p.expiry)
				exp = &e
			}
			knoxSetTimes(t, db, tk[i].Digest, at.Add(p.created), exp)
		}
		for i, p := range plan {
			for range p.uses {
				reqs = append(reqs, knoxGet(tk[i].Token))
				owner = append(owner, i)
			}
		}
		return at, reqs, owner
	}
	caddyDB, knoxDB := knoxCopyDB(t, seed), knoxCopyDB(t, seed)
	knoxStartCaddy(t, caddyDB, s, globalOptions, "")

	cAt, reqs, owner := prepare(caddyDB)
	caddy := knoxSendAll(t, reqs)
	// Caddy may write refreshes off the request path: wait until every
	// expiry knox moves has moved (or 5s), then a little more.
	var cs knoxDBState
	for deadline := time.Now().Add(5 * time.Second); ; {
		cs = knoxState(t, caddyDB)
		moved := 0
		want := 0
		for i, p := range plan {
			if p.moves {
				want++
				if r := cs.byDigest(tk[i].Digest); r != nil && r.Expiry != nil && !r.Expiry.Equal(cAt.Add(*p.expiry)) {
					moved++
				}
			}
		}
		if moved == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	cs = knoxState(t, caddyDB)

	kAt, kreqs, _ := prepare(knoxDB)
	knox := knoxAsk(t, knoxDB, s, kreqs)
	ks := knoxState(t, knoxDB)

	for j := range reqs {
		p := plan[owner[j]]
		t.Run(fmt.Sprintf("%s: answer %d", p.name, j), func(t *testing.T) {
			knoxCompareWhoami(t, reqs[j], caddy[j], knox[j])
			if knox[j].Status != p.status {
				t.Errorf("knox answered %v, the test expects %d", knox[j], p.status)
			}
		})
	}
	for i, p := range plan {
		t.Run(p.name, func(t *testing.T) {
			first := -1
			for j := range owner {
				if owner[j] == i {
					first = j
					break
				}
			}
			// check is one side's outcome: the row, its new expiry,
			// and the offset of the new expiry from the request.
			check := func(side string, at time.Time, st knoxDBState, r knoxResponse) (moved bool, delta time.Duration) {
				row := st.byDigest(tk[i].Digest)
				if p.status == 401 && p.user == "alice" {
					if row != nil {
						t.Errorf("%s: the expired row is still there", side)
					}
					return false, 0
				}
				if row == nil {
					t.Errorf("%s: the row is gone", side)
					return false, 0
				}
				if p.expiry == nil {
					if row.Expiry != nil {
						t.Errorf("%s: expiry %s, want NULL", side, knoxFmt(row.Expiry))
					}
					return false, 0
				}
				old := at.Add(*p.expiry)
				if row.Expiry == nil {
					t.Errorf("%s: expiry NULL, want a time", side)
					return false, 0
				}
				moved = !row.Expiry.Equal(old)
				switch {
				case moved && p.to != nil:
					if cap := at.Add(p.created).Add(*p.to); !row.Expiry.Equal(cap) {
						t.Errorf("%s: expiry %s, want the cap created + max_ttl = %s", side, knoxFmt(row.Expiry), knoxFmt(&cap))
					}
				case moved:
					// The now of a refresh may come from a clock that
					// lags by a few milliseconds (Caddy's cache reads a
					// coarse one): 20ms of tolerance before the request.
					if !knoxWithin(*row.Expiry, r.Started.Add(s.ttl()-20*time.Millisecond), r.Finished.Add(s.ttl()), 5*time.Millisecond) {
						t.Errorf("%s: expiry %s, want the request's now + %v (%s … %s)", side, knoxFmt(row.Expiry), s.ttl(),
							r.Started.Add(s.ttl()).UTC().Format(time.RFC3339Nano), r.Finished.Add(s.ttl()).UTC().Format(time.RFC3339Nano))
					}
				}
				return moved, row.Expiry.Sub(old)
			}
			cm, cd := check("Caddy", cAt, cs, caddy[first])
			km, kd := check("knox", kAt, ks, knox[first])
			if km != p.moves {
				t.Errorf("knox moved the expiry: %v, the test expects %v", km, p.moves)
			}
			if cm != km {
				t.Errorf("Caddy moved the expiry: %v; knox: %v", cm, km)
			}
			// The expiries moved the same way, but for the time between
			// the two requests (each measured from its own prepare) and
			// the time each server took to answer.
			gap := caddy[first].Started.Sub(cAt) - knox[first].Started.Sub(kAt)
			slack := 50*time.Millisecond + caddy[first].Finished.Sub(caddy[first].Started) + knox[first].Finished.Sub(knox[first].Started)
			if diff := (cd - kd) - gap; cm && km && p.to == nil && (diff > slack || diff < -slack) {
				t.Errorf("Caddy moved the expiry by %v, knox by %v (requests %v apart from their preparation): %v off (more than %v)", cd, kd, gap, diff, slack)
			}
			if cm && km && p.to != nil && cd != kd {
				t.Errorf("Caddy moved the expiry by %v, knox by %v, to the same cap", cd, kd)
			}
		})
	}
}

func TestKnoxAutoRefreshWritesAtMostTwiceAMinute(t *testing.T) {
	knoxRequire(t)
	djangoEachStore(t, testKnoxAutoRefreshWrites)
}

// 1,000 requests of one token spread over 61 seconds (in -short mode, as
// fast as they go), with auto_refresh, ttl 10h and the default
// min_refresh_interval of 60s: knox would write the expiry at the first
// request and once more after a minute; Caddy may write at most twice. A
// trigger counts the UPDATEs of knox_authtoken.
func testKnoxAutoRefreshWrites(t *testing.T, kind string) {
	db := knoxNewDB(t, kind)
	knoxCreateUsers(t, db, djangoUser{Username: "alice", Active: true})
	s := knoxSettings{AutoRefresh: true}
	tk := knoxCreateTokens(t, db, s, knoxNewToken{Username: "alice", TTL: time.Hour})[0]
	if kind == "postgres" {
		knoxExec(t, db,
			`CREATE TABLE knoxref_writes (at timestamptz NOT NULL DEFAULT clock_timestamp(), expiry timestamptz)`,
			`CREATE FUNCTION knoxref_count() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN INSERT INTO knoxref_writes (expiry) VALUES (NEW.expiry); RETURN NULL; END $$`,
			`CREATE TRIGGER knoxref_count AFTER UPDATE ON knox_authtoken FOR EACH ROW EXECUTE FUNCTION knoxref_count()`)
	} else {
		knoxExec(t, db,
			`CREATE TABLE knoxref_writes (at text NOT NULL, expiry text)`,
			`CREATE TRIGGER knoxref_count AFTER UPDATE ON knox_authtoken BEGIN
				INSERT INTO knoxref_writes (at, expiry) VALUES (strftime('%Y-%m-%d %H:%M:%f', 'now'), NEW.expiry); END`)
	}
	knoxStartCaddy(t, db, s, globalOptions, "")

	const n = 1000
	span := 61 * time.Second
	if testing.Short() {
		span = 0
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	t.Cleanup(client.CloseIdleConnections)
	want := "user=alice id=1"
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(span * time.Duration(i) / n)); d > 0 {
			time.Sleep(d)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:9080"+knoxWhoami, nil)
		req.Host = "localhost:9080"
		req.Header.Set("Authorization", "Token "+tk.Token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode, body, want)
		}
	}
	took := time.Since(start)
	time.Sleep(2 * time.Second) // writes off the request path land
	writes := knoxCounter(t, db, `SELECT count(*) FROM knoxref_writes`)()
	t.Logf("%d requests in %v: %d writes of the row", n, took, writes)
	for _, line := range knoxWriteLog(t, db) {
		t.Logf("  write: %s", line)
	}
	if writes > 2 {
		t.Errorf("%d writes for %d requests in %v, want at most 2", writes, n, took)
	}
	if writes < 1 {
		t.Errorf("no write: the first request moves the expiry by 9h, knox writes it")
	}
	row := knoxState(t, db).byDigest(tk.Digest)
	if row == nil || row.Expiry == nil || row.Expiry.Before(start.Add(10*time.Hour-time.Second)) {
		t.Errorf("stored expiry %v, want at least the first request's now + 10h (%s)", row, start.Add(10*time.Hour).UTC().Format(time.RFC3339Nano))
	}
}

// knoxWriteLog is the counted writes: when, and the expiry written.
func knoxWriteLog(t *testing.T, db djangoDB) []string {
	t.Helper()
	q := `SELECT at::text || ' expiry ' || coalesce(expiry::text, 'NULL') FROM knoxref_writes ORDER BY at`
	if db.kind == "sqlite" {
		q = `SELECT at || ' expiry ' || coalesce(expiry, 'NULL') FROM knoxref_writes ORDER BY at`
	}
	return knoxQueryStrings(t, db, q)
}
