package definition

import (
	"regexp"
	"strconv"
	"time"
)

// health checks a health check and fills in its defaults.
func (v *validator) health(h *Health) {
	if h == nil {
		return
	}
	words, err := SplitCommand(h.Command)
	switch {
	case h.Command == "":
		v.errorf("health.command", "is required: the program to run in the container, e.g. \"/usr/bin/curl -fs http://localhost/\"; it passes by exiting 0")
	case err != nil:
		v.errorf("health.command", "%v", err)
	case len(words) == 0:
		v.errorf("health.command", "is blank: give the program to run in the container")
	}
	v.span(&h.Interval, "health.interval", DefaultHealthInterval, false)
	v.span(&h.StartPeriod, "health.start_period", "0", true)
	v.span(&h.Timeout, "health.timeout", DefaultHealthTimeout, false)
	switch {
	case h.Retries == 0:
		h.Retries = DefaultHealthRetries
	case h.Retries < 0:
		v.errorf("health.retries", "%d is negative: give how many failed checks in a row count as unhealthy, e.g. 3", h.Retries)
	}
	switch h.OnFailure {
	case "":
		h.OnFailure = HealthNone
	case HealthRestart, HealthStop, HealthNone:
	default:
		v.errorf("health.on_failure", "%q is not an action: use \"restart\" (restart the container), \"stop\" or \"none\" (only report it)", h.OnFailure)
	}
}

// span checks a time span field, filling in def when it is unset.
func (v *validator) span(s *string, path, def string, zeroOK bool) {
	if *s == "" {
		*s = def
		return
	}
	d, ok := ParseSpan(*s)
	switch {
	case !ok:
		v.errorf(path, "%q is not a time span: write a number and a unit, e.g. \"30s\", \"5min\" or \"1h 30min\"", *s)
	case d == 0 && !zeroOK:
		v.errorf(path, "%q is zero: give a positive time span, e.g. \"30s\"", *s)
	}
}

var spanPart = regexp.MustCompile(`^([0-9]+)(msec|ms|sec|s|min|m|hr|h)(?: +|$)`)

// ParseSpan reads a time span in the subset of systemd.time(7)'s syntax
// that both systemd and strata-helper read the same way: whole numbers
// with a unit (ms, s, min, h and their spellings), summed; or "0".
func ParseSpan(s string) (time.Duration, bool) {
	if s == "0" {
		return 0, true
	}
	var total time.Duration
	for rest := s; rest != ""; {
		m := spanPart.FindStringSubmatch(rest)
		if m == nil {
			return 0, false
		}
		n, err := strconv.ParseInt(m[1], 10, 32)
		if err != nil {
			return 0, false
		}
		total += time.Duration(n) * spanUnits[m[2]]
		rest = rest[len(m[0]):]
	}
	return total, s != ""
}

var spanUnits = map[string]time.Duration{
	"ms": time.Millisecond, "msec": time.Millisecond,
	"s": time.Second, "sec": time.Second,
	"m": time.Minute, "min": time.Minute,
	"h": time.Hour, "hr": time.Hour,
}
