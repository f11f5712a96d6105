package definition

import (
	"os/exec"
	"strings"
	"testing"
)

// nspawn_args as getopt_long reads them: every spelling of an owned option
// is refused, other options pass, and what getopt would refuse is refused.
func TestNspawnArgs(t *testing.T) {
	cases := []struct {
		args []string
		want string // "" for accepted; else a part of the one problem
		at   int    // its entry
	}{
		{args: []string{"--private-network", "--bind-ro=/srv", "-U", "--capability=CAP_NET_ADMIN"}},
		{args: []string{"--bind", "/srv", "-E", "A=1", "-EB=2", "-qnj"}},
		{args: []string{"--private-users", "--volatile=state", "--priv=pick"}, want: `"--priv=pick" is ambiguous: it abbreviates --private-network, --private-users, --private-users-chown, --private-users-ownership`, at: 2},
		{args: []string{"--machine=x"}, want: "--machine is set by Strata"},
		{args: []string{"--machin=x"}, want: `"--machin=x" is read by systemd-nspawn as --machine (-M), which is set by Strata`},
		{args: []string{"--mach", "x"}, want: `"--mach" is read by systemd-nspawn as --machine (-M)`},
		{args: []string{"-Mname"}, want: `"-Mname" is read by systemd-nspawn as --machine (-M)`},
		{args: []string{"-M", "name"}, want: `"-M" is read by systemd-nspawn as --machine (-M)`},
		{args: []string{"-D/dir"}, want: `as --directory (-D)`},
		{args: []string{"--dir=/x"}, want: `"--dir=/x" is read by systemd-nspawn as --directory (-D)`},
		{args: []string{"-qb"}, want: `"-qb" is read by systemd-nspawn as --boot (-b)`},
		{args: []string{"-xq"}, want: `as --ephemeral (-x)`},
		{args: []string{"-a"}, want: `as --as-pid2 (-a)`},
		{args: []string{"--keep"}, want: `as --keep-unit,`},
		{args: []string{"--regi=no"}, want: `as --register,`},
		{args: []string{"--kill-sig=SIGINT"}, want: `as --kill-signal,`},
		{args: []string{"--templ=/x"}, want: `as --template,`},
		{args: []string{"-i", "/x.raw"}, want: `as --image (-i)`},
		{args: []string{"--notify-ready", "no"}, want: "--notify-ready is set by Strata"},
		{args: []string{"-E", "-M"}}, // -M is -E's value, as getopt reads it
		{args: []string{"--setenv", "--boot"}},
		{args: []string{"--bind"}, want: `"--bind" needs a value`},
		{args: []string{"-qE"}, want: `"-qE" needs a value: write --setenv=VALUE`},
		{args: []string{"--private-network=yes"}, want: "--private-network takes no value"},
		{args: []string{"--frobnicate"}, want: `"--frobnicate" is not an option of systemd-nspawn (252)`},
		{args: []string{"-qX"}, want: `-X is not an option`},
		{args: []string{"--", "/bin/sh"}, want: `"--" ends systemd-nspawn's options`},
		{args: []string{"private-network"}, want: `"private-network" is not an option: each entry`},
		{args: []string{"-"}, want: `"-" is not an option`},
		{args: []string{"--bind=/a", "/b"}, want: `"/b" is not an option`, at: 1},
	}
	for _, c := range cases {
		v := &validator{file: "c.json", lines: map[string]int{}, badType: map[string]bool{}}
		v.nspawnArgs(c.args)
		switch {
		case c.want == "" && len(v.problems) > 0:
			t.Errorf("%q: %v", c.args, v.problems)
		case c.want != "" && (len(v.problems) != 1 || !strings.Contains(v.problems[0].Message, c.want) || v.problems[0].Path != "nspawn_args["+string(rune('0'+c.at))+"]"):
			t.Errorf("%q: got %v, want one problem at [%d] with %q", c.args, v.problems, c.at, c.want)
		}
	}
}

// Every option of the table is found by its own name, and every short
// letter of getopt's string is in the table once.
func TestNspawnOptionTable(t *testing.T) {
	for _, o := range nspawnOptions {
		if o.long != "" {
			if got, _, msg := longOption("--" + o.long); got != &o && (got == nil || got.long != o.long) {
				t.Errorf("--%s resolves to %v (%s)", o.long, got, msg)
			}
		}
	}
	const getopt = "hD:u:abL:M:jS:Z:qi:xp:nUE:P"
	for i := 0; i < len(getopt); i++ {
		if getopt[i] == ':' {
			continue
		}
		o := shortOption(getopt[i])
		takes := i+1 < len(getopt) && getopt[i+1] == ':'
		if o == nil || takes != (o.arg == requiredArg) {
			t.Errorf("-%c: table has %+v, getopt says argument %v", getopt[i], o, takes)
		}
	}
}

// The table agrees with the real systemd-nspawn on this machine: each long
// option, its shortest unambiguous abbreviation and the prefix one shorter
// are resolved (or found ambiguous, or taking a value) by both alike.
// nspawn runs as nobody, so an accepted command line stops at "Need to be
// root." and nothing is started.
func TestNspawnTableAgainstBinary(t *testing.T) {
	nspawn, err := exec.LookPath("systemd-nspawn")
	if err != nil {
		t.Fatal("systemd-nspawn is needed (Debian package systemd-container; run test/setup-host.sh)")
	}
	seen := map[string]bool{}
	for _, o := range nspawnOptions {
		if o.long == "" {
			continue // short-only
		}
		for _, p := range boundaryPrefixes(o.long) {
			if seen[p] {
				continue
			}
			seen[p] = true
			for _, arg := range []string{"--" + p, "--" + p + "=x"} {
				out, _ := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", nspawn, arg).CombinedOutput()
				if got, want := getoptVerdict(string(out)), ourVerdict(arg); got != want {
					t.Errorf("%s: systemd-nspawn says %q (%s), the table %q", arg, got, strings.TrimSpace(string(out)), want)
				}
			}
		}
	}
}

// boundaryPrefixes are name, its shortest prefix that the table resolves
// to it, and the prefix one shorter.
func boundaryPrefixes(name string) []string {
	out := []string{name}
	for n := 1; n < len(name); n++ {
		if o, _, msg := longOption("--" + name[:n]); msg == "" && o.long == name {
			return append(out, name[:n], name[:max(n-1, 1)])
		}
	}
	return append(out, name[:len(name)-1])
}

func getoptVerdict(out string) string {
	for _, v := range []string{"requires an argument", "is ambiguous", "unrecognized option", "doesn't allow an argument"} {
		if strings.Contains(out, v) {
			return v
		}
	}
	return "accepted"
}

func ourVerdict(arg string) string {
	o, next, msg := longOption(arg)
	switch {
	case strings.Contains(msg, "ambiguous"):
		return "is ambiguous"
	case strings.Contains(msg, "not an option"):
		return "unrecognized option"
	case strings.Contains(msg, "takes no value"):
		return "doesn't allow an argument"
	case o != nil && next:
		return "requires an argument"
	}
	return "accepted"
}
