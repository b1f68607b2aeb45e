package tokenauth

import (
	"errors"
	"fmt"
	"iter"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
)

// The collectors are the process's, as reverse_proxy's are: created once,
// registered in the metrics registry of every config Caddy loads (a reload
// brings a fresh registry, whose /metrics then shows the same counters,
// still counting), and counting whether or not any registry shows them, so
// that a handler provisioned without one (tests, a zero caddy.Context)
// works alike. Labels take a fixed set of values: never a key, a username
// or an address. The request path resolves nothing at run time: every
// label's counter is looked up here, once, and counting is one atomic add.
const metricsNamespace, metricsSubsystem = "caddy", "token_auth"

func newCounterVec(name, help string, label string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      name,
		Help:      help,
	}, []string{label})
}

var (
	requestsTotal = newCounterVec("requests_total",
		"Requests whose token check token_auth decided, by outcome.", "outcome")
	cacheRequestsTotal = newCounterVec("cache_requests_total",
		"Lookups of a well-formed key in the identity cache, by result: hit (answered from memory, found or unknown) or miss (asked the store).", "result")
	cacheFlushesTotal = newCounterVec("cache_flushes_total",
		"Flushes of the identity caches, by cause: change (a change the store pushed, once per handler subscribed) or provision (a handler started using a cache).", "cause")
	loginAttemptsTotal = newCounterVec("login_attempts_total",
		"Requests to the login endpoint past content negotiation and the token check, by result.", "result")
	throttleRejectionsTotal = newCounterVec("throttle_rejections_total",
		"Requests refused with 429 because a client IP was over a budget: login (the login throttle) or failure (failure_throttle).", "budget")
	cacheEntries = newCacheEntriesCollector(pooledCaches)
)

// collectors are what registerMetrics registers.
var collectors = []prometheus.Collector{
	requestsTotal, cacheRequestsTotal, cacheFlushesTotal, loginAttemptsTotal, throttleRejectionsTotal, cacheEntries,
}

// The counters of every label value, resolved once.
var (
	requestsPassed        = requestsTotal.WithLabelValues("passed")
	requestsAnonymous     = requestsTotal.WithLabelValues("anonymous")
	requestsNotProvided   = requestsTotal.WithLabelValues("not_provided")
	requestsInvalidHeader = requestsTotal.WithLabelValues("invalid_header")
	requestsInvalidToken  = requestsTotal.WithLabelValues("invalid_token")
	requestsInactive      = requestsTotal.WithLabelValues("inactive")
	requestsThrottled     = requestsTotal.WithLabelValues("throttled")
	requestsUnavailable   = requestsTotal.WithLabelValues("unavailable")
	requestsForbidden     = requestsTotal.WithLabelValues("forbidden")

	cacheHits   = cacheRequestsTotal.WithLabelValues("hit")
	cacheMisses = cacheRequestsTotal.WithLabelValues("miss")

	cacheFlushesChange    = cacheFlushesTotal.WithLabelValues("change")
	cacheFlushesProvision = cacheFlushesTotal.WithLabelValues("provision")

	loginSuccess        = loginAttemptsTotal.WithLabelValues("success")
	loginBadCredentials = loginAttemptsTotal.WithLabelValues("bad_credentials")
	loginInvalid        = loginAttemptsTotal.WithLabelValues("invalid")
	loginThrottled      = loginAttemptsTotal.WithLabelValues("throttled")
	loginUnavailable    = loginAttemptsTotal.WithLabelValues("unavailable")
	loginTokenLimit     = loginAttemptsTotal.WithLabelValues("token_limit")

	throttledLogin   = throttleRejectionsTotal.WithLabelValues("login")
	throttledFailure = throttleRejectionsTotal.WithLabelValues("failure")
)

// registerMetrics makes the collectors visible in reg, the registry of
// the config being loaded; several handlers of one config register them
// once. A nil reg (a context not made by caddy.NewContext) shows nothing.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) && are.ExistingCollector == c {
				continue
			}
			return fmt.Errorf("registering token_auth metrics: %w", err)
		}
	}
	return nil
}

// countRequest counts the outcome of a token check; anonymousPasses tells
// whether a request without credentials is let through (optional, the
// login endpoint) or refused as not provided.
func countRequest(a *authResult, anonymousPasses bool) {
	switch a.outcome {
	case authOK:
		requestsPassed.Inc()
	case authAnonymous:
		if anonymousPasses {
			requestsAnonymous.Inc()
		} else {
			requestsNotProvided.Inc()
		}
	case authThrottled:
		requestsThrottled.Inc()
	case authUnavailable:
		requestsUnavailable.Inc()
	case authForbidden:
		requestsForbidden.Inc()
	default:
		refusalCounter(a.err).Inc()
	}
}

// refusalCounter is the counter of a DRF refusal.
func refusalCounter(err error) prometheus.Counter {
	switch err {
	case drf.ErrInvalidToken:
		return requestsInvalidToken
	case drf.ErrInactive:
		return requestsInactive
	case drf.ErrNotProvided:
		return requestsNotProvided
	}
	return requestsInvalidHeader // no credentials, spaces, invalid characters
}

// cacheEntriesCollector reports, when scraped, the entries of caches
// summed over them: the process's are the live ones, those in the usage
// pool.
type cacheEntriesCollector struct {
	desc   *prometheus.Desc
	caches iter.Seq[*identityCache]
}

func newCacheEntriesCollector(caches iter.Seq[*identityCache]) *cacheEntriesCollector {
	return &cacheEntriesCollector{
		desc: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "cache_entries"),
			cacheEntriesHelp, []string{"kind"}, nil),
		caches: caches,
	}
}

const cacheEntriesHelp = "Entries held by the identity caches, by kind: found (an identity, active or not) or unknown (a key remembered as unknown); expired ones count until they are swept."

// pooledCaches yields the caches in the usage pool.
func pooledCaches(yield func(*identityCache) bool) {
	caches.Range(func(_, v any) bool {
		pc, ok := v.(pooledCache)
		return !ok || yield(pc.identityCache)
	})
}

func (c *cacheEntriesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *cacheEntriesCollector) Collect(ch chan<- prometheus.Metric) {
	var found, unknown int
	for cc := range c.caches {
		f, u := cc.Len()
		found += f
		unknown += u
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(found), "found")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(unknown), "unknown")
}
