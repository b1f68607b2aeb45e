package tokenauth

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
	"github.com/tokenauth/caddy-tokenauth/internal/throttle"
)

// throttles keeps each budget across config reloads, so that a reload
// does not hand every client a fresh one. A budget is named by what it
// counts and its rate; handlers that name the same budget share it.
var throttles = caddy.NewUsagePool()

// pooledThrottle lets a throttle live in the usage pool: it holds nothing
// to release.
type pooledThrottle struct{ *throttle.Throttle }

func (pooledThrottle) Destruct() error { return nil }

// loadThrottle returns the shared budget name at rate r.
func loadThrottle(name string, r drf.Rate) (*throttle.Throttle, error) {
	v, _, err := throttles.LoadOrNew(name, func() (caddy.Destructor, error) {
		return pooledThrottle{throttle.New(r)}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(pooledThrottle).Throttle, nil
}
