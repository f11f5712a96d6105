package units

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/strata-project/strata/units/readback"
)

// hostile are the characters that mean something to systemd's unit parser,
// its word splitting, specifiers and environment expansion.
var hostile = []string{" ", ",", ":", "%", "$", `\`, `"`, `'`, ";", "%n", "$HOME", "${X}", "$$", `\n`, "-", "@", "+", "!", "ä"}

// Every argv with an absolute command and no control characters comes back
// from systemd's word splitting as it went in.
func TestQuoteExecReadsBack(t *testing.T) {
	for _, h := range hostile {
		for _, argv := range [][]string{
			{"/bin/x", h}, {"/bin/x", "a" + h + "b"}, {"/bin/x", h + h}, {"/bin/x" + h, "--opt=" + h}, {"/bin/x", "", h},
		} {
			checkExec(t, argv)
		}
	}
}

func checkExec(t *testing.T, argv []string) {
	t.Helper()
	line, err := QuoteExec(argv)
	if err != nil {
		t.Fatalf("QuoteExec(%q): %v", argv, err)
	}
	unesc, err := readback.Specifiers(line)
	if err != nil {
		t.Fatalf("QuoteExec(%q) = %s: %v", argv, line, err)
	}
	got, err := readback.Exec(unesc)
	if err != nil || !reflect.DeepEqual(got, argv) {
		t.Errorf("QuoteExec(%q) = %s, read back as %q (%v)", argv, line, got, err)
	}
}

func FuzzQuoteExec(f *testing.F) {
	for _, h := range hostile {
		f.Add("/bin/x", h, "a"+h)
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		argv := []string{"/" + a, b, c}
		for _, w := range argv {
			if lineProblem(w+"x") != nil || !utf8.ValidString(w) {
				return // Render refuses these; tested below
			}
		}
		checkExec(t, argv)
	})
}

// A RequiresMountsFor= word comes back as one word.
func TestAddListReadsBack(t *testing.T) {
	for _, h := range hostile {
		p := "/srv/a" + h + "b"
		u := New("x.service").AddList("Unit", "RequiresMountsFor", p)
		b, err := u.Render()
		if err != nil {
			t.Fatal(err)
		}
		opts, err := readback.Options(b)
		if err != nil || len(opts) != 1 {
			t.Fatalf("%s: %v", b, err)
		}
		v, err := readback.Specifiers(opts[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readback.List(v)
		if err != nil || len(got) != 1 || got[0] != p {
			t.Errorf("RequiresMountsFor=%s read back as %q (%v), want %q", opts[0].Value, got, err, p)
		}
	}
}

// Render refuses what systemd would read differently, naming the unit and
// setting; Bytes still gives something to compare.
func TestRenderRefuses(t *testing.T) {
	cases := []struct {
		u    *Unit
		want string
	}{
		{New("a.service").Add("Unit", "Description", "a\nExecStartPre=/bin/evil"), "control character 0x0a"},
		{New("a.service").Add("Unit", "Description", "a\rb"), "control character 0x0d"},
		{New("a.service").Add("Unit", "Description", "a\x00b"), "control character 0x00"},
		{New("a.service").Add("Unit", "Description", "a\tb"), "control character 0x09"},
		{New("a.service").Add("Unit", "Description", `a\`), "continues the line"},
		{New("a.service").AddRaw("Unit", "After", `a\`), "continues the line"},
		{New("a.service").Add("Unit", "Description", " a"), "white space"},
		{New("a.service").Add("Unit", "Description", "\xff"), "UTF-8"},
		{New("a.service").Add("Unit", "Bad Key", "x"), "not a setting name"},
		{New("a.service").Add("Un]it", "A", "x"), "not a section name"},
		{New("a.service").AddExec("Service", "ExecStart", "-/bin/true"), "not an absolute path"},
		{New("a.service").AddExec("Service", "ExecStart", ";"), "not an absolute path"},
		{New("a.service").AddExec("Service", "ExecStart", "/bin/echo", "a\nb"), "control character 0x0a"},
		{New(strings.Repeat("a", 250) + ".service"), "more than systemd's 255"},
		{New("a b.service"), "not a valid unit name"},
		{New("a.service.d/../x.conf"), "not a drop-in file name"},
	}
	for _, c := range cases {
		b, err := c.u.Render()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Render = %q, %v; want an error with %q", c.u.Name, b, err, c.want)
		}
		if len(c.u.Bytes()) == 0 {
			t.Errorf("%s: Bytes is empty", c.u.Name)
		}
	}
	if _, err := New("a.service").Render("from /etc/strata/a\nb.json"); err == nil || !strings.Contains(err.Error(), "header") {
		t.Errorf("a header with a newline: %v", err)
	}
}

func TestRender(t *testing.T) {
	u := New("x.service.d/50-strata.conf").
		Add("Unit", "Description", "100% a $b").
		AddRaw("Unit", "After", "%i.service").
		AddList("Unit", "RequiresMountsFor", "/a b").
		AddExec("Service", "ExecStart").
		AddExec("Service", "ExecStart", "/bin/echo", "50%", "$x", "a b")
	b, err := u.Render("head")
	if err != nil {
		t.Fatal(err)
	}
	want := "# head\n\n[Unit]\nDescription=100%% a $b\nAfter=%i.service\nRequiresMountsFor=\"/a b\"\n\n[Service]\nExecStart=\nExecStart=/bin/echo 50%% $$x \"a b\"\n"
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
}
