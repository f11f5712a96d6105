package definition

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-project/strata/internal/layout"
)

// The seed's definition loads verbatim, leftover "kind" and all.
func TestSeedLoadsVerbatim(t *testing.T) {
	data, err := os.ReadFile("testdata/seed.json")
	if err != nil {
		t.Fatal(err)
	}
	def, problems := Parse("/etc/strata/test.json", data)
	if def == nil || len(problems) != 0 {
		t.Fatalf("seed: %v", problems)
	}
	c := def.Container
	r := c.Mount.Overlay.Lower[0].Attach.Attach.RBD
	if c.Name != "test" || c.State != StateRunning || !c.Systemd || r.Pool != "rbd" || r.Image != "image1" ||
		r.Options.Name != "admin" || !*r.Options.RO || c.Mount.Overlay.Upper.Kind != UpperTmpfs || c.Mount.Overlay.Upper.Size != layout.DefaultUpperSize {
		t.Errorf("seed decoded wrong: %+v", c)
	}
	if got := def.Secrets(); !reflect.DeepEqual(got, []string{"XXXXXXXXXXXX"}) {
		t.Errorf("Secrets() = %v", got)
	}
}

// Each case is one definition with one problem: the exact message.
func TestProblems(t *testing.T) {
	loop := `"mount": {"kind": "attach", "attach": {"fs_type": "squashfs", "attach": {"kind": "loopback", "loopback": {"path": "/i.sqfs", "base": "root"}}}}`
	rbd := func(opts string) string {
		return `"mount": {"kind": "attach", "attach": {"fs_type": "squashfs", "attach": {"kind": "rbd", "rbd": {"pool": "p", "image": "i", "monitors": ["10.0.0.1"], "options": {` + opts + `}}}}}`
	}
	cases := []struct{ file, body, want string }{
		{"c.json", `{"command": "/bin/true", ` + loop + `, "systemd": "true"}`,
			`c.json:1: systemd: expected a boolean (true or false), got a string ("true")`},
		{"c.json", `{"command": "/bin/true", ` + rbd(`"secret": 12345`) + `}`,
			`c.json:1: mount.attach.attach.rbd.options.secret: expected a string, got an integer`},
		{"c.json", `{"command": "/bin/true", ` + rbd(`"secret": "QUJD", "keyring": "/k"`) + `}`,
			`c.json:1: mount.attach.attach.rbd.options: give the cephx key one way: secret, keyring or credential`},
		{"c.yaml", "command: /bin/true\nmount:\n  kind: attach\n  attach:\n    fsType: squashfs\n",
			`c.yaml:5: mount.attach.fsType: unknown field "fsType"; did you mean "fs_type"?`},
		{"c.toml", "command = \"/bin/true\"\n[mount]\nkind = \"overlay\"\n[mount.overlay]\nlowr = []\n",
			`c.toml: mount.overlay.lowr: unknown field "lowr"; did you mean "lower"?`},
		{"c.json", `{"command": "/bin/sh -c 'x", ` + loop + `}`,
			`c.json:1: command: has an unterminated ' quote`},
		{"c.json", `{"command": "bin/init", "systemd": true, ` + loop + `}`,
			`c.json:1: command: "bin/init" must be an absolute path when systemd is true (it is the container's init)`},
		{"c.json", `[1]`, `c.json:1: a definition is an object with the container's fields (command, mount, ...), not a list`},
		{"c.json", `{"command": "/x", "command": "/y"}`, `c.json:1: command: duplicate key: give each key once`},
		{"c.yaml", "command: /x\n---\ncommand: /y\n", `c.yaml:2: a definition file holds one YAML document; found a second one`},
		{"c.toml", "when = 1979-05-27\n", `c.toml: a TOML date/time value: no definition field is a date; quote it if a string was meant`},
		{"c.ini", ``, `c.ini: unknown file type: name definitions *.json, *.toml or *.yaml`},
	}
	for _, c := range cases {
		def, problems := Parse(c.file, []byte(c.body))
		if def != nil || len(problems.Errors()) == 0 {
			t.Errorf("%s %s: no error", c.file, c.body)
			continue
		}
		if !strings.Contains(problems.Error()+"\n", c.want+"\n") {
			t.Errorf("%s %s:\n got %s\nwant %s", c.file, c.body, problems.Error(), c.want)
		}
	}
}

// A secret's value never appears in a problem, whatever is wrong with it.
func TestSecretsNeverQuoted(t *testing.T) {
	const secret = "c2VjcmV0LXZhbHVlLTEyMw==!!" // not base64: an error about it
	body := `{"command": "/bin/true", "mount": {"kind": "attach", "attach": {"fs_type": "squashfs", "attach": {"kind": "iscsi", "iscsi": {
		"initiator": "iqn.2024-01.org.example:n", "target": "iqn.2024-01.org.example:t", "host": "h",
		"chap": {"username": "u", "password": ["` + secret + `"]}}}}}}`
	_, problems := Parse("s.json", []byte(body))
	if len(problems) == 0 {
		t.Fatal("no problem reported")
	}
	body2 := `{"command": "/bin/true", "mount": {"kind": "attach", "attach": {"fs_type": "squashfs", "attach": {"kind": "rbd", "rbd": {"pool": "p", "image": "i", "monitors": ["m"], "options": {"secret": "` + secret + `"}}}}}}`
	_, problems2 := Parse("s.json", []byte(body2))
	if len(problems2) == 0 {
		t.Fatal("bad base64 not reported")
	}
	for _, p := range append(problems, problems2...) {
		if strings.Contains(p.String(), secret) || strings.Contains(p.String(), "c2VjcmV0") {
			t.Errorf("secret quoted: %s", p)
		}
	}
}

func TestMonitorProblem(t *testing.T) {
	good := []string{"192.168.3.253", "1.2.3.4:6789", "[::1]", "[fd00::1]:3300", "v2:1.2.3.4:3300", "v1:[::1]:6789", "mon1.example.com", "mon1:6789"}
	bad := []string{"", "fd00::1", "[fd00::1", "[1.2.3.4]", "1.2.3.4:", "1.2.3.4:0", "mon_1", "v3:1.2.3.4", "[::1]x",
		"[fe80::1%eth0]", "[fe80::1%eth0]:6789", "[fe80::1%a b]", "[fe80::1%]"}
	for _, m := range good {
		if p := MonitorProblem(m); p != "" {
			t.Errorf("MonitorProblem(%q) = %q, want ok", m, p)
		}
	}
	for _, m := range bad {
		if MonitorProblem(m) == "" {
			t.Errorf("MonitorProblem(%q) accepted", m)
		}
	}
}

// IPv6 zones are refused wherever an address goes: netip takes any text
// after '%'.
func TestHostProblemZones(t *testing.T) {
	for _, h := range []string{"fe80::1%eth0", "fe80::1%x,y", "::1%0"} {
		if p := HostProblem(h); !strings.Contains(p, "IPv6 zone") {
			t.Errorf("HostProblem(%q) = %q, want a zone problem", h, p)
		}
	}
	for _, h := range []string{"fe80::1", "10.0.0.5", "nfs.example.com"} {
		if p := HostProblem(h); p != "" {
			t.Errorf("HostProblem(%q) = %q", h, p)
		}
	}
}

// Numbers that inet_aton would read as another address than they seem to
// say are refused; real addresses and names that merely hold digits pass.
func TestHostProblemNumeric(t *testing.T) {
	for _, h := range []string{"010.0.0.5", "10.5", "1.2.3", "256.1.1.1", "0x0a.0.0.5", "167772165", "10.0.0.5.", "1A0.0.2.1", "node.1"} {
		if p := HostProblem(h); !strings.Contains(p, "looks like an IPv4 address") {
			t.Errorf("HostProblem(%q) = %q, want the IPv4 form problem", h, p)
		}
	}
	for _, h := range []string{"10.0.0.5", "0.0.0.0", "node01", "1a.example.com", "123.example"} {
		if p := HostProblem(h); p != "" {
			t.Errorf("HostProblem(%q) = %q", h, p)
		}
	}
}

func TestMachineNameProblem(t *testing.T) {
	// The longest escaped name that fits: "a" + 57 '-' + "b" is 230 bytes
	// once each '-' is \x2d; var-lib-machines-NAME.mount is then 253.
	atLimit := "a" + strings.Repeat("-", 57) + "b"
	for _, n := range []string{"test", "node-01", "a.b.c", "A1", "a--b", strings.Repeat("x", 63), atLimit} {
		if p := MachineNameProblem(n); p != "" {
			t.Errorf("%q: %s", n, p)
		}
	}
	for _, n := range []string{"", "a_b", ".a", "a.", "a..b", "a b", strings.Repeat("x", 65), strings.Repeat("x", 64),
		"-a", "a-", "a.-b", "a-.b", "a\nb", "a%b", "a/b", "ä", "a" + strings.Repeat("-", 58) + "b"} {
		if MachineNameProblem(n) == "" {
			t.Errorf("%q accepted", n)
		}
	}
}

// The problem reads after the name ("NAME is not a container name: ..."),
// without repeating it, and a leading '-' says why it matters.
func TestMachineNameProblemWording(t *testing.T) {
	for name, want := range map[string]string{
		"-demo": "starts with '-', which every command would take for an option; a machine name is",
		"a.-b":  `has a label starting or ending with '-' ("-b"); a machine name is`,
		"a_b":   "contains '_'; use '-' instead of '_': a machine name is",
		"":      "is empty; a machine name is",
	} {
		got := MachineNameProblem(name)
		if !strings.HasPrefix(got, want) {
			t.Errorf("%q: got %q, want it to start with %q", name, got, want)
		}
		if name != "" && strings.Contains(got, `"`+name+`"`) {
			t.Errorf("%q: the problem repeats the name: %q", name, got)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	cases := map[string][]string{
		"/bin/sh -c 'echo hi; exit 3'": {"/bin/sh", "-c", "echo hi; exit 3"},
		`a "b c" d\ e`:                 {"a", "b c", "d e"},
		"  x  ":                        {"x"},
		`a""b`:                         {"ab"},
	}
	for in, want := range cases {
		got, err := SplitCommand(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := SplitCommand(`a "b`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"pool", "image", "fs_type", "readPartitions", "max_comands"}
	for in, want := range map[string]string{"pol": "pool", "imgae": "image", "fsType": "fs_type", "readpartitions": "readPartitions", "max_commands": "max_comands", "zzz": ""} {
		if got := suggest(in, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// systemd as a plain command does not boot: a warning says what to set;
// with systemd: true, or another command, nothing is said.
func TestSystemdCommandWithoutSystemdHints(t *testing.T) {
	mount := `"mount": {"kind": "bind", "bind": {"path": "/srv/r", "base": "root"}}`
	for _, cmd := range []string{"/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init --log-level=debug"} {
		_, probs := Parse("/etc/strata/x.json", []byte(`{"command": "`+cmd+`", `+mount+`}`))
		if len(probs) != 1 || probs[0].Severity != Warning || probs[0].Path != "command" || !strings.Contains(probs[0].Message, "set systemd: true to boot it") {
			t.Errorf("%s: got %v, want one warning with the hint", cmd, probs)
		}
	}
	for _, body := range []string{
		`{"command": "/usr/lib/systemd/systemd", "systemd": true, ` + mount + `}`,
		`{"command": "/bin/sleep 1000", ` + mount + `}`,
	} {
		if _, probs := Parse("/etc/strata/x.json", []byte(body)); len(probs) != 0 {
			t.Errorf("%s: got %v, want nothing", body, probs)
		}
	}
}
