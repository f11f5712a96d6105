package definition

import (
	"fmt"
	"slices"
	"strings"
)

// nspawn_args are read the way systemd-nspawn reads them, with glibc's
// getopt_long: a long option may be abbreviated to any unambiguous prefix
// (--machin=x), its value may follow in the next word (--machine x), short
// options group (-bq) and take their value attached or in the next word
// (-Mname, -M name). Options Strata owns are refused however they are
// spelt.

type argKind int

const (
	noArg argKind = iota
	requiredArg
	optionalArg // only as --name=value: the next word is never taken
)

// nspawnOption is one entry of systemd-nspawn 252's option table
// (src/nspawn/nspawn.c, parse_argv) with its short letter, if any.
type nspawnOption struct {
	long  string
	short byte
	arg   argKind
}

var nspawnOptions = []nspawnOption{
	{"help", 'h', noArg}, {"version", 0, noArg}, {"directory", 'D', requiredArg}, {"template", 0, requiredArg},
	{"ephemeral", 'x', noArg}, {"user", 'u', requiredArg}, {"private-network", 0, noArg}, {"as-pid2", 'a', noArg},
	{"boot", 'b', noArg}, {"uuid", 0, requiredArg}, {"read-only", 0, noArg}, {"capability", 0, requiredArg},
	{"ambient-capability", 0, requiredArg}, {"drop-capability", 0, requiredArg}, {"no-new-privileges", 0, requiredArg},
	{"link-journal", 0, requiredArg}, {"bind", 0, requiredArg}, {"bind-ro", 0, requiredArg}, {"tmpfs", 0, requiredArg},
	{"overlay", 0, requiredArg}, {"overlay-ro", 0, requiredArg}, {"inaccessible", 0, requiredArg},
	{"machine", 'M', requiredArg}, {"hostname", 0, requiredArg}, {"slice", 'S', requiredArg}, {"setenv", 'E', requiredArg},
	{"selinux-context", 'Z', requiredArg}, {"selinux-apifs-context", 'L', requiredArg}, {"quiet", 'q', noArg},
	{"share-system", 0, noArg}, {"register", 0, requiredArg}, {"keep-unit", 0, noArg},
	{"network-interface", 0, requiredArg}, {"network-macvlan", 0, requiredArg}, {"network-ipvlan", 0, requiredArg},
	{"network-veth", 'n', noArg}, {"network-veth-extra", 0, requiredArg}, {"network-bridge", 0, requiredArg},
	{"network-zone", 0, requiredArg}, {"network-namespace-path", 0, requiredArg}, {"personality", 0, requiredArg},
	{"image", 'i', requiredArg}, {"volatile", 0, optionalArg}, {"port", 'p', requiredArg}, {"property", 0, requiredArg},
	{"private-users", 0, optionalArg}, {"private-users-chown", 0, optionalArg}, {"private-users-ownership", 0, requiredArg},
	{"kill-signal", 0, requiredArg}, {"settings", 0, requiredArg}, {"chdir", 0, requiredArg}, {"pivot-root", 0, requiredArg},
	{"notify-ready", 0, requiredArg}, {"root-hash", 0, requiredArg}, {"root-hash-sig", 0, requiredArg},
	{"verity-data", 0, requiredArg}, {"system-call-filter", 0, requiredArg}, {"rlimit", 0, requiredArg},
	{"oom-score-adjust", 0, requiredArg}, {"cpu-affinity", 0, requiredArg}, {"resolv-conf", 0, requiredArg},
	{"timezone", 0, requiredArg}, {"console", 0, requiredArg}, {"pipe", 0, noArg}, {"oci-bundle", 0, requiredArg},
	{"no-pager", 0, noArg}, {"set-credential", 0, requiredArg}, {"load-credential", 0, requiredArg},
	{"bind-user", 0, requiredArg}, {"suppress-sync", 0, requiredArg},
	// Short-only options (getopt string "+hD:u:abL:M:jS:Z:qi:xp:nUE:P").
	{"", 'j', noArg}, {"", 'U', noArg}, {"", 'P', noArg},
}

// nspawnOwned are the systemd-nspawn options Strata sets itself (long
// names; their short letters are found through the table).
var nspawnOwned = []string{"directory", "machine", "boot", "as-pid2", "keep-unit", "register", "notify-ready",
	"image", "template", "ephemeral", "kill-signal", "oci-bundle"}

// nspawnArg is one option as getopt_long reads it from nspawn_args.
type nspawnArg struct {
	index int           // the entry it starts at
	opt   *nspawnOption // the option it means
}

// name is the option's canonical spelling, for messages.
func (o *nspawnOption) name() string {
	if o.long != "" {
		return "--" + o.long
	}
	return "-" + string(o.short)
}

// parseNspawnArgs reads args as getopt_long would, up to the first entry
// it cannot read (index bad, why in msg).
func parseNspawnArgs(args []string) ([]nspawnArg, int, string) {
	var out []nspawnArg
	for i := 0; i < len(args); i++ {
		a := args[i]
		var opts []nspawnArg
		var next bool // the next entry is the last option's value
		var msg string
		switch {
		case a == "--":
			return out, i, `"--" ends systemd-nspawn's options: give the command in "command" instead`
		case !strings.HasPrefix(a, "-") || a == "-":
			return out, i, fmt.Sprintf("%q is not an option: each entry is one systemd-nspawn option such as --private-network or --bind-ro=/srv", a)
		case strings.HasPrefix(a, "--"):
			var o *nspawnOption
			o, next, msg = longOption(a)
			opts = []nspawnArg{{index: i, opt: o}}
		default:
			opts, next, msg = shortOptions(a, i)
		}
		if msg != "" {
			return out, i, msg
		}
		if next {
			if i+1 >= len(args) {
				o := opts[len(opts)-1].opt
				return out, i, fmt.Sprintf("%q needs a value: write %s=VALUE (or the value as the next entry)", a, o.name())
			}
			i++
		}
		out = append(out, opts...)
	}
	return out, -1, ""
}

// longOption resolves "--name[=value]": an exact name, else the one option
// the name abbreviates. next tells that the value is the next word.
func longOption(a string) (o *nspawnOption, next bool, msg string) {
	name, _, hasValue := strings.Cut(a[2:], "=")
	var matches []*nspawnOption
	for i := range nspawnOptions {
		n := &nspawnOptions[i]
		if n.long == "" || !strings.HasPrefix(n.long, name) {
			continue
		}
		if n.long == name {
			matches = []*nspawnOption{n}
			break
		}
		matches = append(matches, n)
	}
	switch {
	case len(matches) == 0:
		return nil, false, fmt.Sprintf("%q is not an option of systemd-nspawn (252): see systemd-nspawn --help", a)
	case len(matches) > 1:
		var names []string
		for _, m := range matches {
			names = append(names, m.name())
		}
		return nil, false, fmt.Sprintf("%q is ambiguous: it abbreviates %s; write the option in full", a, strings.Join(names, ", "))
	}
	o = matches[0]
	switch {
	case o.arg == noArg && hasValue:
		return nil, false, fmt.Sprintf("%q: %s takes no value", a, o.name())
	case o.arg == requiredArg && !hasValue:
		return o, true, ""
	}
	return o, false, ""
}

// shortOptions reads a group of short options ("-bq", "-Mname", "-M").
func shortOptions(a string, index int) (opts []nspawnArg, next bool, msg string) {
	for j := 1; j < len(a); j++ {
		o := shortOption(a[j])
		if o == nil {
			return nil, false, fmt.Sprintf("%q: -%c is not an option of systemd-nspawn (252): see systemd-nspawn --help", a, a[j])
		}
		opts = append(opts, nspawnArg{index: index, opt: o})
		if o.arg == requiredArg {
			// The rest of the word is the value; none means the next word.
			return opts, j == len(a)-1, ""
		}
	}
	return opts, false, ""
}

func shortOption(c byte) *nspawnOption {
	for i := range nspawnOptions {
		if nspawnOptions[i].short == c {
			return &nspawnOptions[i]
		}
	}
	return nil
}

// nspawnArgs checks nspawn_args: options of systemd-nspawn, none that
// Strata owns, however getopt_long would read them.
func (v *validator) nspawnArgs(args []string) {
	opts, bad, msg := parseNspawnArgs(args)
	if msg != "" {
		v.errorf(fmt.Sprintf("nspawn_args[%d]", bad), "%s", msg)
	}
	for _, a := range opts {
		if !slices.Contains(nspawnOwned, a.opt.long) {
			continue
		}
		p, written, name := fmt.Sprintf("nspawn_args[%d]", a.index), args[a.index], a.opt.name()
		if written == name || strings.HasPrefix(written, name+"=") {
			v.errorf(p, "%s is set by Strata from the definition and cannot be overridden here", name)
			continue
		}
		if a.opt.short != 0 {
			name += fmt.Sprintf(" (-%c)", a.opt.short)
		}
		v.errorf(p, "%q is read by systemd-nspawn as %s, which is set by Strata from the definition and cannot be overridden here", written, name)
	}
}
