package definition

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Severity tells whether a problem stops a definition from being used.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Problem is one thing wrong with a definition: where (file, field path,
// line when the format gives one), what is wrong and what would be right.
// Messages never quote the value of a secret field.
type Problem struct {
	File     string   `json:"file"`
	Line     int      `json:"line,omitempty"`
	Path     string   `json:"field,omitempty"`
	Message  string   `json:"message"`
	Severity Severity `json:"severity"`
}

// String renders "FILE:LINE: FIELD: MESSAGE", leaving out what is unknown.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	if p.Path != "" {
		b.WriteString(": ")
		b.WriteString(printablePath(p.Path))
	}
	b.WriteString(": ")
	if p.Severity == Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// printablePath quotes a field path that holds a control character (a key
// the file spells so): printed as it is, it would break the line in logs
// and placeholders, or drive the terminal.
func printablePath(path string) string {
	if ControlProblem(path) != "" {
		return strconv.Quote(path)
	}
	return path
}

// Problems is a list of problems, in the order they were found.
type Problems []Problem

// HasErrors reports whether any problem is an error (not a warning).
func (ps Problems) HasErrors() bool {
	for _, p := range ps {
		if p.Severity == Error {
			return true
		}
	}
	return false
}

// Errors returns the problems that are errors.
func (ps Problems) Errors() Problems { return ps.filter(Error) }

// Warnings returns the problems that are warnings.
func (ps Problems) Warnings() Problems { return ps.filter(Warning) }

func (ps Problems) filter(s Severity) Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == s {
			out = append(out, p)
		}
	}
	return out
}

// Error joins the errors one per line, so Problems can be returned as an error.
func (ps Problems) Error() string {
	lines := make([]string, 0, len(ps))
	for _, p := range ps {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "\n")
}

// suggest returns the known name closest to an unknown one, or "".
// Case, '_' and '-' are ignored first (fsType → fs_type), then up to two
// edits are allowed (pol → pool).
func suggest(unknown string, known []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	for _, k := range known {
		if norm(k) == norm(unknown) {
			return k
		}
	}
	best, bestDist := "", 3
	if len(unknown) <= 3 {
		bestDist = 2
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	for _, k := range sorted {
		if d := editDistance(strings.ToLower(unknown), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// oneOf renders a list of accepted words for a message: "a, b or c".
func oneOf(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = fmt.Sprintf("%q", w)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
