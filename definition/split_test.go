package definition

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// SplitCommand splits as /bin/sh does: the shell itself gives the expected
// words for inputs that hold nothing it would expand.
func TestSplitCommandAsShell(t *testing.T) {
	inputs := []string{
		`/bin/true`,
		`  x  `,
		"a\tb",
		`a "b c" d\ e`,
		`a""b`,
		`a '' b`,
		`""`,
		`/bin/sh -c 'echo hi; exit 3'`,
		`/bin/sh -c "echo \"hi\""`,
		`"echo \"hi\""`,
		`echo "a\\b" "a\b" 'a\b' a\\b`,
		`echo "it's" 'say "hi"' "\'"`,
		`echo "\$HOME" '\$HOME' \$HOME`,
		"echo \"\\`x\\`\" \\`",
		`echo a#b "#c" '#d' \#e`,
		`echo \'\"\ \\`,
		`a\` + "\n" + `b "c\` + "\n" + `d"`,
		`echo "a;b" 'c|d' e\&f \(g\) "<h>"`,
		`/usr/lib/systemd/systemd --log-level=debug systemd.unit=multi-user.target`,
		`echo ""'' x''"" ''""y`,
		`echo "   " '	'`,
		`echo "a\nb" 'c\td'`,
	}
	for _, in := range inputs {
		want := shellWords(t, in)
		got, err := SplitCommand(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("SplitCommand(%q) = %q, %v; /bin/sh says %q", in, got, err, want)
		}
	}
}

// shellWords asks /bin/sh how it splits a command line into words.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	script := "set -- " + line + "\nfor w; do printf '[%s]\\n' \"$w\"; done"
	out, err := exec.Command("/bin/sh", "-c", script).Output()
	if err != nil {
		t.Fatalf("/bin/sh on %q: %v", line, err)
	}
	words := []string{}
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if l != "" {
			words = append(words, strings.TrimSuffix(strings.TrimPrefix(l, "["), "]"))
		}
	}
	return words
}

// What a shell would read as more than words, or could not read, is refused.
func TestSplitCommandRefuses(t *testing.T) {
	cases := map[string]string{
		`a "b`:             `has an unterminated " quote`,
		`a 'b`:             `has an unterminated ' quote`,
		`a "b\"`:           `has an unterminated " quote`,
		`a \`:              `ends with a lone backslash`,
		"a\nb":             `contains a newline or NUL byte: give one command line`,
		"a 'b\nc'":         `contains a newline or NUL byte: give one command line`,
		"a \"b\x00\"":      `contains a newline or NUL byte: give one command line`,
		"a\\\x00":          `contains a newline or NUL byte: give one command line`,
		`a;b`:              `has an unquoted ";", which a shell reads as an operator: quote it, or run a shell (/bin/sh -c '...')`,
		`a | b`:            `has an unquoted "|", which a shell reads as an operator: quote it, or run a shell (/bin/sh -c '...')`,
		`a >/tmp/x`:        `has an unquoted ">", which a shell reads as an operator: quote it, or run a shell (/bin/sh -c '...')`,
		`a &`:              `has an unquoted "&", which a shell reads as an operator: quote it, or run a shell (/bin/sh -c '...')`,
		`a $(b)`:           `has an unquoted "(", which a shell reads as an operator: quote it, or run a shell (/bin/sh -c '...')`,
		`a #comment`:       `has an unquoted # starting a word, which a shell reads as a comment: quote it`,
		`/bin/sh -c 'x' <`: `has an unquoted "<", which a shell reads as an operator: quote it, or run a shell (/bin/sh -c '...')`,
	}
	for in, want := range cases {
		if _, err := SplitCommand(in); err == nil || err.Error() != want {
			t.Errorf("SplitCommand(%q): %v, want %s", in, err, want)
		}
	}
}
