// Package units holds systemd unit files as data and renders them to the
// exact bytes the generator writes: sections in order, values escaped so
// that systemd reads back what was meant (no specifier or variable
// expansion), Exec lines quoted word by word.
package units

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/coreos/go-systemd/v22/unit"
)

// Unit is one unit file or drop-in: a name and ordered sections.
type Unit struct {
	Name     string // file name, e.g. "var-lib-machines-test.mount" or "systemd-nspawn@test.service.d/50-strata.conf"
	Sections []*Section
	// Identity, when set, is what makes two units the same for sharing,
	// instead of their bytes. It is never rendered.
	Identity string
}

// Section is one [Section] of a unit: ordered key=value entries.
type Section struct {
	Name    string
	Entries []Entry
}

// Entry is one setting. Value is literal text: rendering escapes it.
type Entry struct {
	Key   string
	Value string
	kind  entryKind
}

// entryKind says how an entry's value is written.
type entryKind uint8

const (
	literal entryKind = iota // escaped ('%')
	raw                      // already in unit syntax (an administrator's settings)
	word                     // one word of a space-separated list: quoted when needed
	exec                     // an Exec command line, quoted by AddExec
	badExec                  // an Exec command line that cannot be written: Value says why
)

// New returns an empty unit named name.
func New(name string) *Unit { return &Unit{Name: name} }

func (u *Unit) section(name string) *Section {
	for _, s := range u.Sections {
		if s.Name == name {
			return s
		}
	}
	s := &Section{Name: name}
	u.Sections = append(u.Sections, s)
	return s
}

// Add appends key=value to section, once per value, keeping order.
func (u *Unit) Add(section, key string, values ...string) *Unit {
	s := u.section(section)
	for _, v := range values {
		s.Entries = append(s.Entries, Entry{Key: key, Value: v})
	}
	return u
}

// AddRaw appends values already in unit file syntax, unescaped: for
// settings an administrator wrote for systemd (where '%' may be a
// specifier, or a setting that does not expand specifiers at all).
func (u *Unit) AddRaw(section, key string, values ...string) *Unit {
	s := u.section(section)
	for _, v := range values {
		s.Entries = append(s.Entries, Entry{Key: key, Value: v, kind: raw})
	}
	return u
}

// AddList appends values to a setting that systemd splits into words
// (RequiresMountsFor=, ...), one value per line, each quoted when it holds
// white space or quotes so that systemd reads back the one word.
func (u *Unit) AddList(section, key string, values ...string) *Unit {
	s := u.section(section)
	for _, v := range values {
		s.Entries = append(s.Entries, Entry{Key: key, Value: v, kind: word})
	}
	return u
}

// AddExec appends an Exec-style setting (ExecStart=, ExecStop=, ...) whose
// command line is argv, quoted so that systemd splits it back into argv.
// An empty argv writes "Key=" which resets the list (in drop-ins). An argv
// systemd cannot read back (see QuoteExec) makes Render fail.
func (u *Unit) AddExec(section, key string, argv ...string) *Unit {
	s := u.section(section)
	line, err := QuoteExec(argv)
	if err != nil {
		s.Entries = append(s.Entries, Entry{Key: key, Value: err.Error(), kind: badExec})
		return u
	}
	s.Entries = append(s.Entries, Entry{Key: key, Value: line, kind: exec})
	return u
}

// AddExecSplice is AddExec with "$name" between argv[:at] and argv[at:]:
// systemd replaces it with the variable's value split at white space,
// words known only when the unit starts (from an EnvironmentFile=).
func (u *Unit) AddExecSplice(section, key string, argv []string, at int, name string) *Unit {
	s := u.section(section)
	line, err := QuoteExec(argv[:at])
	if err != nil {
		s.Entries = append(s.Entries, Entry{Key: key, Value: err.Error(), kind: badExec})
		return u
	}
	line += " $" + name
	for _, w := range argv[at:] {
		line += " " + quoteWord(w)
	}
	s.Entries = append(s.Entries, Entry{Key: key, Value: line, kind: exec})
	return u
}

// AddExecMayFail is AddExec with systemd's "-" prefix: a failure of the
// command is logged and ignored (for bookkeeping a unit must not fail on).
func (u *Unit) AddExecMayFail(section, key string, argv ...string) *Unit {
	u.AddExec(section, key, argv...)
	s := u.section(section)
	if e := &s.Entries[len(s.Entries)-1]; e.kind == exec {
		e.Value = "-" + e.Value
	}
	return u
}

// Get returns the values of key in section, in order.
func (u *Unit) Get(section, key string) []string {
	var out []string
	for _, s := range u.Sections {
		if s.Name != section {
			continue
		}
		for _, e := range s.Entries {
			if e.Key == key {
				out = append(out, e.Value)
			}
		}
	}
	return out
}

// Render returns the unit's bytes, with header lines as leading comments,
// or an error when some value cannot be written so that systemd reads it
// back: validation should have refused it, and a unit that systemd reads
// differently must never be written.
func (u *Unit) Render(header ...string) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(1024) // most units are smaller: one allocation
	if err := NameProblem(u.Name); err != nil {
		return nil, err
	}
	for _, h := range header {
		if err := lineProblem(h); err != nil {
			return nil, fmt.Errorf("%s: header %q: %w", u.Name, h, err)
		}
		b.WriteString("# ")
		b.WriteString(h)
		b.WriteByte('\n')
	}
	for i, s := range u.Sections {
		if i > 0 || len(header) > 0 {
			b.WriteByte('\n')
		}
		if !isName(s.Name, "-") {
			return nil, fmt.Errorf("%s: %q is not a section name", u.Name, s.Name)
		}
		b.WriteString("[" + s.Name + "]\n")
		for _, e := range s.Entries {
			v, err := e.text()
			if err == nil && !isName(e.Key, "") {
				err = fmt.Errorf("not a setting name")
			}
			if err != nil {
				return nil, fmt.Errorf("%s: [%s] %s=: %w", u.Name, s.Name, e.Key, err)
			}
			b.WriteString(e.Key)
			b.WriteByte('=')
			b.WriteString(v)
			b.WriteByte('\n')
		}
	}
	return b.Bytes(), nil
}

// Bytes renders the unit as Render does, for comparing units. It never
// fails: a unit Render refuses comes out in Go syntax (never to be written).
func (u *Unit) Bytes(header ...string) []byte {
	b, err := u.Render(header...)
	if err == nil {
		return b
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%q %q\n", u.Name, header)
	for _, s := range u.Sections {
		for _, e := range s.Entries {
			fmt.Fprintf(&out, "%q %q %q %d\n", s.Name, e.Key, e.Value, e.kind)
		}
	}
	return out.Bytes()
}

// text is the entry's value in unit file syntax.
func (e Entry) text() (string, error) {
	var v string
	switch e.kind {
	case badExec:
		return "", fmt.Errorf("%s", e.Value)
	case exec, raw:
		v = e.Value
	case word:
		v = quoteListWord(Escape(e.Value))
	default:
		if strings.TrimSpace(e.Value) != e.Value {
			return "", fmt.Errorf("value %q starts or ends with white space, which systemd strips", e.Value)
		}
		v = Escape(e.Value)
	}
	if err := lineProblem(v); err != nil {
		return "", fmt.Errorf("value %q: %w", e.Value, err)
	}
	return v, nil
}

// lineProblem refuses text that would not stay one line of a unit file:
// systemd ends a line at '\n', '\r' and NUL, and continues one that ends
// in '\'. Other control characters and invalid UTF-8 have no business in
// a unit either.
func lineProblem(v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("holds the control character 0x%02x", c)
		}
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("is not valid UTF-8")
	}
	if strings.HasSuffix(v, `\`) {
		return fmt.Errorf("ends with '\\', which continues the line")
	}
	return nil
}

// isName reports whether s is a plain name of letters and digits (and
// extra): section and setting names.
func isName(s, extra string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(extra, r)) {
			return false
		}
	}
	return true
}

// MaxNameLen is systemd's limit on a unit name (UNIT_NAME_MAX less the NUL).
const MaxNameLen = 255

// NameProblem checks a unit file name, or a drop-in's path
// ("UNIT.d/NAME.conf"), against systemd's unit name rules: at most 255
// bytes of [A-Za-z0-9:_.\@-] with a type suffix.
func NameProblem(name string) error {
	unitName, dropIn, isDropIn := strings.Cut(name, ".d/")
	if isDropIn && (strings.Contains(dropIn, "/") || !strings.HasSuffix(dropIn, ".conf") || !isName(strings.TrimSuffix(dropIn, ".conf"), "-_.")) {
		return fmt.Errorf("%q is not a drop-in file name", name)
	}
	switch {
	case len(unitName) > MaxNameLen:
		return fmt.Errorf("unit name %q is %d bytes long, more than systemd's %d", unitName, len(unitName), MaxNameLen)
	case !isName(unitName, ":_.\\@-") || !strings.Contains(unitName, "."):
		return fmt.Errorf("%q is not a valid unit name", unitName)
	}
	return nil
}

// Escape makes a literal value safe in a unit file: '%' would start a
// specifier. What cannot be escaped (control characters, a trailing '\')
// is refused by Render.
func Escape(v string) string { return strings.ReplaceAll(v, "%", "%%") }

// quoteListWord quotes one word of a space-separated setting as systemd's
// extract_first_word(EXTRACT_UNQUOTE) reads it: inside double quotes, '\'
// makes the next character literal.
func quoteListWord(w string) string {
	if w != "" && !strings.ContainsAny(w, " \"'\\") {
		return w
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(w) + `"`
}

// QuoteExec renders argv as one Exec command line, as systemd.service(5)'s
// COMMAND LINES reads it back. Plain words stay bare; others are
// double-quoted with C escapes. '%' and '$' are doubled so that systemd
// expands neither specifiers nor environment variables. The first word
// must be an absolute path: systemd reads a leading "-@:+!" as prefixes and
// a lone ";" as a separator, however they are quoted.
func QuoteExec(argv []string) (string, error) {
	if len(argv) > 0 && !strings.HasPrefix(argv[0], "/") {
		return "", fmt.Errorf("command %q is not an absolute path", argv[0])
	}
	words := make([]string, len(argv))
	for i, a := range argv {
		words[i] = quoteWord(a)
	}
	return strings.Join(words, " "), nil
}

// execEscaper doubles '%' and '$'; built once (a Replacer is costly to build).
var execEscaper = strings.NewReplacer("%", "%%", "$", "$$")

func quoteWord(w string) string {
	w = execEscaper.Replace(w)
	if w != "" && w != ";" && strings.IndexFunc(w, func(r rune) bool { return !plain(r) }) < 0 {
		return w
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range w {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func plain(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%$[]", r)
}

// MountName returns the .mount unit name for a mount point, by systemd's
// path escaping rules (systemd-escape --path --suffix=mount).
func MountName(where string) string { return unit.UnitNamePathEscape(where) + ".mount" }

// DeviceName is the name of the device unit of a device path.
func DeviceName(path string) string { return unit.UnitNamePathEscape(path) + ".device" }
