// Package mountinfo reads the kernel's mount table (/proc/self/mountinfo),
// with its octal escapes undone and overlayfs's layer options split out.
package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Path is the mount table of the calling process's mount namespace.
const Path = "/proc/self/mountinfo"

// Mount is one line of the table.
type Mount struct {
	ID      int    // the mount's ID: unique in its namespace while mounted (the kernel reuses it after)
	Device  string // "major:minor" of the file system
	Point   string // where it is mounted
	FSType  string
	Source  string // the device, or what mount(8) was given as What=
	Options string // per-superblock options, e.g. lowerdir=...,upperdir=...
	Line    string // the line as the kernel wrote it, for messages that must show all of it
}

// Read parses the table at path.
func Read(path string) ([]Mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// Parse reads a table in mountinfo's format (proc(5)). On a malformed line
// it returns the mounts before it and an error.
func Parse(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024) // overlay lines can be long
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		m, ok := parseLine(sc.Text())
		if !ok {
			return out, fmt.Errorf("mountinfo: malformed line %q", sc.Text())
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

func parseLine(line string) (Mount, bool) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 10 || sep < 0 || sep+3 >= len(f) {
		return Mount{}, false
	}
	id, err := strconv.Atoi(f[0])
	if err != nil {
		return Mount{}, false
	}
	return Mount{ID: id, Device: f[2], Point: unescape(f[4]), FSType: f[sep+1], Source: unescape(f[sep+2]), Options: f[sep+3], Line: line}, true
}

// unescape undoes the \ooo escapes the kernel writes for space, tab,
// newline and backslash.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Option returns the value of key in the superblock options, e.g.
// Option("upperdir"); ok is false when it is not there.
func (m Mount) Option(key string) (string, bool) {
	for _, o := range splitOptions(m.Options) {
		if k, v, _ := strings.Cut(o, "="); k == key {
			return unescape(v), true
		}
	}
	return "", false
}

// Lowers returns the lower directories of an overlay mount, top first.
// The kernel escapes ':' in a directory name as "\:" inside lowerdir=.
func (m Mount) Lowers() []string {
	v, ok := m.Option("lowerdir")
	if !ok {
		return nil
	}
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			i++
			cur.WriteByte(v[i])
		case v[i] == ':':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(out, cur.String())
}

// splitOptions splits at the commas the kernel did not escape.
func splitOptions(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// Under reports whether p is dir or inside it.
func Under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}
