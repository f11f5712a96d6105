// Package units holds systemd unit files as data and renders them to the
// exact bytes the generator writes: sections in order, values escaped so
// that systemd reads back what was meant (no specifier or variable
// expansion), Exec lines quoted word by word.
package units

import (
	"bytes"
	"strings"

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
	raw   bool // already in unit syntax (Exec lines)
}

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
		s.Entries = append(s.Entries, Entry{Key: key, Value: v, raw: true})
	}
	return u
}

// AddExec appends an Exec-style setting (ExecStart=, ExecStop=, ...) whose
// command line is argv, quoted so that systemd splits it back into argv.
// An empty argv writes "Key=" which resets the list (in drop-ins).
func (u *Unit) AddExec(section, key string, argv ...string) *Unit {
	s := u.section(section)
	s.Entries = append(s.Entries, Entry{Key: key, Value: QuoteExec(argv), raw: true})
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

// Bytes renders the unit with header lines as leading comments.
func (u *Unit) Bytes(header ...string) []byte {
	var b bytes.Buffer
	b.Grow(1024) // most units are smaller: one allocation
	for _, h := range header {
		b.WriteString("# ")
		b.WriteString(h)
		b.WriteByte('\n')
	}
	for i, s := range u.Sections {
		if i > 0 || len(header) > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("[" + s.Name + "]\n")
		for _, e := range s.Entries {
			b.WriteString(e.Key)
			b.WriteByte('=')
			if e.raw {
				b.WriteString(e.Value)
			} else {
				b.WriteString(Escape(e.Value))
			}
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// Escape makes a literal value safe in a unit file: '%' would start a
// specifier. Values never hold newlines (validation refuses them).
func Escape(v string) string { return strings.ReplaceAll(v, "%", "%%") }

// QuoteExec renders argv as one Exec command line. Plain words stay bare;
// others are double-quoted with C escapes. '%' and '$' are doubled so that
// systemd expands neither specifiers nor environment variables.
func QuoteExec(argv []string) string {
	words := make([]string, len(argv))
	for i, a := range argv {
		words[i] = quoteWord(a)
	}
	return strings.Join(words, " ")
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
		case '\t':
			b.WriteString(`\t`)
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
