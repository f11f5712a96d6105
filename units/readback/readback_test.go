package readback

import (
	"reflect"
	"strings"
	"testing"
)

// Cases from systemd's own test-extract-word.c and systemd.service(5)'s
// COMMAND LINES examples, for the flags Strata's units are read with.
func TestWords(t *testing.T) {
	cases := []struct {
		in    string
		flags Flags
		want  []string
		bad   bool
	}{
		{in: "foo bar", flags: Unquote | CUnescape, want: []string{"foo", "bar"}},
		{in: "  foo\t\tbar  ", flags: Unquote | CUnescape, want: []string{"foo", "bar"}},
		{in: `"foo bar"`, flags: Unquote | CUnescape, want: []string{"foo bar"}},
		{in: `'foo bar'`, flags: Unquote | CUnescape, want: []string{"foo bar"}},
		{in: `a"b c"d`, flags: Unquote | CUnescape, want: []string{"ab cd"}},
		{in: `""`, flags: Unquote | CUnescape, want: []string{""}},
		{in: `"a\"b"`, flags: Unquote | CUnescape, want: []string{`a"b`}},
		{in: `"a\\b"`, flags: Unquote | CUnescape, want: []string{`a\b`}},
		{in: `'a"b'`, flags: Unquote | CUnescape, want: []string{`a"b`}},
		{in: `"a'b"`, flags: Unquote | CUnescape, want: []string{`a'b`}},
		{in: `a\tb`, flags: Unquote | CUnescape, want: []string{"a\tb"}},
		{in: `a\sb`, flags: Unquote | CUnescape, want: []string{"a b"}},
		{in: `\x41\101\u00e4`, flags: Unquote | CUnescape, want: []string{"AAä"}},
		{in: `\x00`, flags: Unquote | CUnescape, bad: true},
		{in: `\000`, flags: Unquote | CUnescape, bad: true},
		{in: `\q`, flags: Unquote | CUnescape, bad: true},
		{in: `a\`, flags: Unquote | CUnescape, bad: true},
		{in: `"a`, flags: Unquote | CUnescape, bad: true},
		{in: `'a`, flags: Unquote | CUnescape, bad: true},
		// EXTRACT_UNQUOTE alone (RequiresMountsFor=): '\' takes the next
		// byte literally, quotes group.
		{in: `"/a b" /c`, flags: Unquote, want: []string{"/a b", "/c"}},
		{in: `/a\ b`, flags: Unquote, want: []string{"/a b"}},
		{in: `"/a\"b"`, flags: Unquote, want: []string{`/a"b`}},
		{in: `/a\q`, flags: Unquote, want: []string{"/aq"}},
		// No flags: quotes are text.
		{in: `"a b"`, flags: 0, want: []string{`"a`, `b"`}},
	}
	for _, c := range cases {
		got, err := Words(c.in, c.flags)
		if c.bad {
			if err == nil {
				t.Errorf("Words(%q) = %q, want an error", c.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Words(%q, %d) = %q, %v; want %q", c.in, c.flags, got, err, c.want)
		}
	}
}

func TestExec(t *testing.T) {
	good := map[string][]string{
		``:                         nil,
		`/bin/echo a "b c" 'd'`:    {"/bin/echo", "a", "b c", "d"},
		`/bin/echo $$HOME 5$ $$$$`: {"/bin/echo", "$HOME", "5$", "$$"},
		`/bin/echo ";" \;`:         {"/bin/echo", ";", ";"},
		`-/bin/true x`:             {"/bin/true", "x"}, // "-": a failure is ignored
	}
	for in, want := range good {
		got, err := Exec(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Exec(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`-@/bin/true`, `"-/bin/true"`, `@/bin/true x`, `/bin/a ; /bin/b`, `/bin/echo $HOME`,
		`/bin/echo ${HOME}`, `";" /bin/x`, `/bin/echo a\;b`, `/bin/echo "x`} {
		if got, err := Exec(in); err == nil {
			t.Errorf("Exec(%q) = %q, want an error", in, got)
		}
	}
}

func TestSpecifiers(t *testing.T) {
	if got, err := Specifiers("a%%b%%%%"); err != nil || got != "a%b%%" {
		t.Errorf("Specifiers = %q, %v", got, err)
	}
	for _, in := range []string{"%i", "a%", "%%%n"} {
		if _, err := Specifiers(in); err == nil {
			t.Errorf("Specifiers(%q) accepted", in)
		}
	}
}

func TestOptions(t *testing.T) {
	opts, err := Options([]byte("# c\n[Unit]\nDescription=a b\nAfter=x.service\n\n[Service]\nExecStart=/bin/true \"x y\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range opts {
		got = append(got, o.Section+"."+o.Name+"="+o.Value)
	}
	want := []string{"Unit.Description=a b", "Unit.After=x.service", `Service.ExecStart=/bin/true "x y"`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Options = %q", got)
	}
}

// A setting longer than go-systemd's 2048 bytes is read as systemd 252
// reads it (up to 1 MiB).
func TestOptionsLongLine(t *testing.T) {
	long := strings.Repeat("x", 5000)
	opts, err := Options([]byte("[Service]\nExecStart=/bin/echo " + long + "\nType=oneshot\n"))
	if err != nil || len(opts) != 2 || opts[0].Value != "/bin/echo "+long || opts[1].Value != "oneshot" {
		t.Fatalf("Options = %v, %v", opts, err)
	}
}
