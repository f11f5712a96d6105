package contract

import (
	"flag"
	"io"
	"reflect"
	"testing"
)

func TestParseFlagsAnywhere(t *testing.T) {
	for _, args := range [][]string{{"--json", "demo"}, {"demo", "--json"}, {"demo", "-json"}} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		j := fs.Bool("json", false, "")
		rest, err := ParseFlags(fs, args)
		if err != nil || !*j || !reflect.DeepEqual(rest, []string{"demo"}) {
			t.Errorf("%v: rest %v json %v err %v", args, rest, *j, err)
		}
	}
}

func TestParseFlagsDoubleDash(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	j := fs.Bool("json", false, "")
	rest, err := ParseFlags(fs, []string{"a", "--json", "--", "-b", "--json"})
	if err != nil || !*j || !reflect.DeepEqual(rest, []string{"a", "-b", "--json"}) {
		t.Errorf("rest %v json %v err %v", rest, *j, err)
	}
}

// The helper reads its verbs as the CLI reads its commands: a flag after
// an operand is still a flag, and after "--" nothing is.
func TestHelperParsesLikeTheCLI(t *testing.T) {
	c, err := Parse([]string{"fail", "one", "--", "--dry-run", "two"})
	if err != nil || !reflect.DeepEqual(c, Fail{Messages: []string{"one", "--dry-run", "two"}}) {
		t.Errorf("fail: %#v, %v", c, err)
	}
	if _, err := Parse([]string{"gc", "x", "--dry-run"}); err == nil || err.Error() != `gc: unexpected argument "x"` {
		t.Errorf("gc with an operand before a flag: %v", err)
	}
	if c, err := Parse([]string{"gc", "--", "--dry-run"}); err == nil {
		t.Errorf("gc -- --dry-run read as %#v: after --, --dry-run is an operand", c)
	}
	if c, err := Parse([]string{"gc", "--json", "--dry-run"}); err != nil || c != (GC{DryRun: true, JSON: true}) {
		t.Errorf("gc --json --dry-run: %#v, %v", c, err)
	}
}
