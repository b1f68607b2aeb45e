package drf

import "time"

// FormatDateTime writes t as DRF's DateTimeField does with the default
// DATETIME_FORMAT (ISO 8601) and TIME_ZONE "UTC": Python's isoformat() in
// UTC, microseconds (omitted when zero, as Python does), "+00:00" written
// as "Z". Nanoseconds below the microsecond are dropped, as Python's
// datetime has none.
func FormatDateTime(t time.Time) string {
	t = t.UTC().Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Format("2006-01-02T15:04:05.000000Z")
}
