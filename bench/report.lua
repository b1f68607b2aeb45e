-- bench/report.lua: wrk's done hook, one machine-readable line per run.
--
--   BENCH rps=<requests/s> p50_us=<µs> p99_us=<µs> requests=<n> non2xx=<n> errors=<n>
--
-- non2xx counts responses with status > 399 (wrk's summary.errors.status);
-- errors counts socket errors (connect, read, write, timeout). A run with
-- either above zero did not measure what it claims to.
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"BENCH rps=%.1f p50_us=%d p99_us=%d requests=%d non2xx=%d errors=%d\n",
		summary.requests / (summary.duration / 1e6),
		latency:percentile(50),
		latency:percentile(99),
		summary.requests,
		e.status,
		e.connect + e.read + e.write + e.timeout
	))
end
