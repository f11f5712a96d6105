package definition

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"unicode/utf8"
)

// One rule for every string a definition holds, whatever field it is in:
// no control characters and valid UTF-8. systemd ends a unit file line at
// '\n', a bare '\r' or NUL, and no consumer of a definition (unit files,
// kernel map lines, iscsiadm records, mount options) has a use for the
// others. The rule is a walk over the bound model, so a field added to the
// model is covered without anyone remembering to.

// ControlProblem checks one string: "" when it holds no control character
// (below 0x20, or 0x7f) and is valid UTF-8, else what is wrong. It never
// quotes s, so it serves secrets too.
func ControlProblem(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return fmt.Sprintf("contains the control character %s at byte %d: write the value on one line, without tabs or control characters", controlName(c), i)
		}
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8: write the value in UTF-8"
	}
	return ""
}

// controlName names a control character the way a reader would look it up.
func controlName(c byte) string {
	switch c {
	case '\n':
		return `\n (line feed)`
	case '\r':
		return `\r (carriage return)`
	case '\t':
		return `\t (tab)`
	case 0:
		return `NUL`
	}
	return fmt.Sprintf("0x%02x", c)
}

// unitLineProblem checks a value that may be written into a unit file line
// as it is: systemd joins a line ending in '\' with the next one, and
// strips white space around a value.
func unitLineProblem(s string) string {
	switch {
	case strings.HasSuffix(s, `\`):
		return `ends with '\', which systemd reads as "continued on the next line": remove the trailing backslash`
	case strings.TrimSpace(s) != s:
		return "starts or ends with a space, which systemd strips from a setting's value: remove it"
	}
	return ""
}

// execOnly are the fields whose values reach units only as quoted words of
// an Exec command line, where a trailing '\' is escaped like any other.
var execOnly = []string{"command", "environment", "nspawn_args", "health.command"}

// checkStrings walks every string of c (fields, list items, map keys and
// values) and reports those that break the rule. Secrets are checked but
// never quoted. The other checks then skip those paths: one problem each.
func (v *validator) checkStrings(c *Container) {
	if anyString(reflect.ValueOf(c), suspicious) {
		v.walkStrings(reflect.ValueOf(c), "", false)
	}
}

// suspicious over-approximates the rule without knowing the field, so the
// walk that builds field paths runs only for the rare definition that
// needs it (the generator loads thousands at boot).
func suspicious(s string) bool { return ControlProblem(s) != "" || unitLineProblem(s) != "" }

// anyString reports whether fn holds for a string (or map key) of val.
func anyString(val reflect.Value, fn func(string) bool) bool {
	switch val.Kind() {
	case reflect.Pointer:
		return !val.IsNil() && anyString(val.Elem(), fn)
	case reflect.Struct:
		for _, f := range fieldsOf(val.Type()) {
			if anyString(val.Field(f.index), fn) {
				return true
			}
		}
	case reflect.Slice:
		for i := 0; i < val.Len(); i++ {
			if anyString(val.Index(i), fn) {
				return true
			}
		}
	case reflect.Map:
		iter := val.MapRange()
		for iter.Next() {
			if fn(iter.Key().String()) || anyString(iter.Value(), fn) {
				return true
			}
		}
	case reflect.String:
		return fn(val.String())
	}
	return false
}

// refuse reports a broken string and marks its path as reported.
func (v *validator) refuse(path, format string, args ...any) {
	v.errorf(path, format, args...)
	v.badType[path] = true
}

func (v *validator) walkStrings(val reflect.Value, path string, secret bool) {
	switch val.Kind() {
	case reflect.Pointer:
		if !val.IsNil() {
			v.walkStrings(val.Elem(), path, secret)
		}
	case reflect.Struct:
		for _, f := range fieldsOf(val.Type()) {
			v.walkStrings(val.Field(f.index), join(path, f.name), f.secret)
		}
	case reflect.Slice:
		for i := 0; i < val.Len(); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			if val.Type() == reflect.TypeOf(Values(nil)) && val.Len() == 1 {
				p = path // most likely written as a scalar: name it as written
			}
			v.walkStrings(val.Index(i), p, secret)
		}
	case reflect.Map:
		keys := val.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			key := k.String()
			if msg := ControlProblem(key); msg != "" {
				// Named at the map: a path holding the character would
				// carry it into every message.
				v.errorf(path, "key %q %s", key, msg)
				v.badType[join(path, key)] = true
				continue
			}
			v.walkStrings(val.MapIndex(k), join(path, key), secret)
		}
	case reflect.String:
		v.checkString(val.String(), path, secret)
	}
}

func (v *validator) checkString(s, path string, secret bool) {
	msg := ControlProblem(s)
	if msg == "" && !secret && !isExecOnly(path) {
		msg = unitLineProblem(s)
	}
	switch {
	case msg == "":
	case secret:
		v.refuse(path, "%s", msg)
	default:
		v.refuse(path, "%q %s", s, msg)
	}
}

func isExecOnly(path string) bool {
	for _, f := range execOnly {
		if path == f || strings.HasPrefix(path, f+".") || strings.HasPrefix(path, f+"[") {
			return true
		}
	}
	return false
}
