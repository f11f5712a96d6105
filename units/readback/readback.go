// Package readback reads generated unit files back the way systemd 252
// reads them, for tests: settings through go-systemd's deserializer,
// specifiers ('%'), Exec command lines split by systemd's
// extract_first_word() with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE (as
// config_parse_exec() calls it), space-separated lists with EXTRACT_UNQUOTE,
// and "$" as the service manager's environment expansion sees it.
//
// Each function refuses what the generator never means to write (a
// specifier, a variable reference, a command prefix), so a test that reads
// a unit back learns both the value and that nothing would be expanded.
package readback

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/coreos/go-systemd/v22/unit"
)

// Option is one setting of a unit file, as systemd's parser sees it.
type Option = unit.UnitOption

// Options parses a unit file into its settings, in order, with go-systemd's
// deserializer. That refuses lines of 2048 bytes or more (the LINE_MAX of
// systemd before v219), while systemd 252 reads lines up to LONG_LINE_MAX
// (1 MiB): such values are set aside for the deserializer and put back.
func Options(data []byte) ([]*Option, error) {
	lines := strings.SplitAfter(string(data), "\n")
	long := map[string]string{}
	for i, l := range lines {
		if len(l) < unit.SYSTEMD_LINE_MAX || len(l) > longLineMax {
			continue
		}
		key, value, ok := strings.Cut(l, "=")
		if !ok {
			continue // not a setting: the deserializer says what is wrong
		}
		token := fmt.Sprintf("readback-long-value-%d", i)
		long[token] = strings.TrimRight(value, "\n")
		lines[i] = key + "=" + token + "\n"
	}
	opts, err := unit.DeserializeOptions(strings.NewReader(strings.Join(lines, "")))
	for _, o := range opts {
		if v, ok := long[o.Value]; ok {
			o.Value = strings.TrimSpace(v)
		}
	}
	return opts, err
}

// longLineMax is systemd's LONG_LINE_MAX.
const longLineMax = 1 << 20

// Specifiers undoes the escaping of '%' ("%%" is '%'); any other specifier
// is an error: nothing Strata writes as a literal may expand.
func Specifiers(v string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 >= len(v) || v[i+1] != '%' {
			return "", fmt.Errorf("%q: specifier at byte %d", v, i)
		}
		b.WriteByte('%')
		i++
	}
	return b.String(), nil
}

// Flags choose how Words reads a value, as in systemd's extract-word.h.
type Flags int

const (
	Unquote   Flags = 1 << iota // EXTRACT_UNQUOTE: '...' and "..." group and are removed
	CUnescape                   // EXTRACT_CUNESCAPE: \n, \xNN, ... are C escapes
)

// whitespace is systemd's WHITESPACE, the default separators.
const whitespace = " \t\n\r"

// Words splits s into words as repeated extract_first_word(s, NULL, flags)
// calls do; an error where systemd returns -EINVAL.
func Words(s string, flags Flags) ([]string, error) {
	var words []string
	for {
		w, rest, ok, err := FirstWord(s, flags)
		if err != nil || !ok {
			return words, err
		}
		words = append(words, w)
		s = rest
	}
}

// FirstWord is extract_first_word(): the first word of s, the rest after
// it (and its trailing separators), and false when s holds no word.
func FirstWord(s string, flags Flags) (word, rest string, ok bool, err error) {
	s = strings.TrimLeft(s, whitespace)
	if s == "" {
		return "", "", false, nil
	}
	var b strings.Builder
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			n, err := unescape(&b, s[i+1:], flags)
			if err != nil {
				return "", "", false, fmt.Errorf("%q: %v", s, err)
			}
			i += n
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			b.WriteByte(c)
		case flags&Unquote != 0 && (c == '\'' || c == '"'):
			quote = c
		case strings.IndexByte(whitespace, c) >= 0:
			return b.String(), strings.TrimLeft(s[i:], whitespace), true, nil
		default:
			b.WriteByte(c)
		}
	}
	if quote != 0 {
		return "", "", false, fmt.Errorf("%q: unterminated %c quote", s, quote)
	}
	return b.String(), "", true, nil
}

// unescape handles what follows a backslash: a C escape with CUnescape
// (cunescape_one, NUL refused), else the next byte taken literally. It
// returns how many bytes of rest it used.
func unescape(b *strings.Builder, rest string, flags Flags) (int, error) {
	if rest == "" {
		return 0, fmt.Errorf("trailing backslash")
	}
	if flags&CUnescape == 0 {
		b.WriteByte(rest[0])
		return 1, nil
	}
	simple := map[byte]byte{'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v', '\\': '\\', '"': '"', '\'': '\'', 's': ' '}
	if c, ok := simple[rest[0]]; ok {
		b.WriteByte(c)
		return 1, nil
	}
	hex := func(digits int) (uint64, error) {
		if len(rest) < 1+digits {
			return 0, fmt.Errorf("short \\%c escape", rest[0])
		}
		return strconv.ParseUint(rest[1:1+digits], 16, 32)
	}
	switch c := rest[0]; {
	case c == 'x':
		v, err := hex(2)
		if err != nil || v == 0 {
			return 0, fmt.Errorf("bad \\x escape")
		}
		b.WriteByte(byte(v)) // eight bit: a byte, not a code point
		return 3, nil
	case c == 'u' || c == 'U':
		digits := 4
		if c == 'U' {
			digits = 8
		}
		v, err := hex(digits)
		if err != nil || v == 0 || !utf8.ValidRune(rune(v)) {
			return 0, fmt.Errorf("bad \\%c escape", c)
		}
		b.WriteRune(rune(v))
		return 1 + digits, nil
	case c >= '0' && c <= '7':
		if len(rest) < 3 {
			return 0, fmt.Errorf("short octal escape")
		}
		v, err := strconv.ParseUint(rest[:3], 8, 16)
		if err != nil || v == 0 || v > 255 {
			return 0, fmt.Errorf("bad octal escape")
		}
		b.WriteByte(byte(v))
		return 3, nil
	}
	return 0, fmt.Errorf("unknown escape \\%c", rest[0])
}

// Exec reads the value of an Exec setting (ExecStart=, ...) after
// specifiers, as config_parse_exec() does, and returns the one command line
// it holds, with "$$" read as '$'. An empty value (a reset) is nil. The
// "-" prefix (ignore a failure) is read and dropped: the generator uses it
// for bookkeeping commands. Other prefixes (@:+!), a ';' separating two
// commands, or a variable reference are errors: the generator never means
// them.
func Exec(value string) ([]string, error) {
	value = strings.TrimPrefix(value, "-")
	first, rest, ok, err := FirstWord(value, Unquote|CUnescape)
	if err != nil || !ok {
		return nil, err
	}
	if first == ";" || first != "" && strings.ContainsRune("-@:+!|", rune(first[0])) {
		return nil, fmt.Errorf("%q: first word %q is a separator or has a prefix", value, first)
	}
	argv := []string{first}
	for rest != "" {
		// An unquoted lone ';' separates commands; "\;" is a literal one.
		if rest == ";" || strings.HasPrefix(rest, "; ") || strings.HasPrefix(rest, ";\t") {
			return nil, fmt.Errorf("%q: holds a second command", value)
		}
		if rest == `\;` || strings.HasPrefix(rest, `\; `) || strings.HasPrefix(rest, "\\;\t") {
			argv = append(argv, ";")
			rest = strings.TrimLeft(rest[2:], whitespace)
			continue
		}
		var w string
		if w, rest, _, err = FirstWord(rest, Unquote|CUnescape); err != nil {
			return nil, err
		}
		argv = append(argv, w)
	}
	for i, w := range argv {
		if Splices[w] {
			continue // "$NAME" alone: words from the environment at start (units.AddExecSplice)
		}
		if argv[i], err = Dollars(w); err != nil {
			return nil, err
		}
	}
	return argv, nil
}

// Splices are the words "$NAME" that Strata's units put on a command line
// on purpose (units.AddExecSplice; generator/cdi.go): systemd replaces each
// with its variable's value split into words. Exec keeps them as written;
// any other variable reference is an error.
var Splices = map[string]bool{"$STRATA_CDI_ARGS": true}

// Dollars reads a word as the service manager's environment expansion
// (replace_env) does: "$$" is '$', and "${" or "$NAME" would expand, which
// is an error here. A '$' before anything else stays.
func Dollars(w string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		if w[i] != '$' || i+1 >= len(w) {
			b.WriteByte(w[i])
			continue
		}
		switch c := w[i+1]; {
		case c == '$':
			b.WriteByte('$')
			i++
		case c == '{' || c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
			return "", fmt.Errorf("%q: a variable reference at byte %d", w, i)
		default:
			b.WriteByte('$')
		}
	}
	return b.String(), nil
}

// List reads a space-separated setting (RequiresMountsFor=, ...) after
// specifiers, as extract_first_word(EXTRACT_UNQUOTE) does.
func List(value string) ([]string, error) {
	return Words(value, Unquote)
}
