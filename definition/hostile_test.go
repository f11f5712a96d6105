package definition

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Hostile and odd input to the three parsers: duplicate keys, numbers,
// infinity, nesting, secrets in parser messages. See also split_test.go.

const (
	jsonMount = `"mount": {"kind": "bind", "bind": {"path": "/srv/root", "base": "root"}}`
	tomlMount = "[mount]\nkind = \"bind\"\n[mount.bind]\npath = \"/srv/root\"\nbase = \"root\"\n"
	yamlMount = "mount:\n  kind: bind\n  bind: {path: /srv/root, base: root}\n"
)

// same is one document written in each format.
type same struct {
	name             string
	json, toml, yaml string
	want             []string // "path: message" of each error, or nil for a usable definition
}

// The same document in JSON, TOML and YAML gives the same definition or
// the same problems (field path and message).
func TestFormatsParity(t *testing.T) {
	cases := []same{
		{"duplicate top-level key",
			`{"command": "/bin/true", "command": "/bin/false", ` + jsonMount + `}`,
			"command = \"/bin/true\"\ncommand = \"/bin/false\"\n" + tomlMount,
			"command: /bin/true\ncommand: /bin/false\n" + yamlMount,
			[]string{"command: duplicate key: give each key once"}},
		{"duplicate environment variable",
			`{"command": "/bin/true", "environment": {"A": "1", "A": "2"}, ` + jsonMount + `}`,
			"command = \"/bin/true\"\n[environment]\nA = \"1\"\nA = \"2\"\n" + tomlMount,
			"command: /bin/true\nenvironment:\n  A: \"1\"\n  A: \"2\"\n" + yamlMount,
			[]string{"environment.A: duplicate key: give each key once"}},
		{"duplicate service setting",
			`{"command": "/bin/true", "service": {"MemoryMax": "1G", "MemoryMax": "2G"}, ` + jsonMount + `}`,
			"command = \"/bin/true\"\n[service]\nMemoryMax = \"1G\"\nMemoryMax = \"2G\"\n" + tomlMount,
			"command: /bin/true\nservice: {MemoryMax: 1G, MemoryMax: 2G}\n" + yamlMount,
			[]string{"service.MemoryMax: duplicate key: give each key once"}},
		{"duplicate unit setting",
			`{"command": "/bin/true", "unit": {"After": ["a.service"], "After": "b.service"}, ` + jsonMount + `}`,
			"command = \"/bin/true\"\n[unit]\nAfter = [\"a.service\"]\nAfter = \"b.service\"\n" + tomlMount,
			"command: /bin/true\nunit:\n  After: [a.service]\n  After: b.service\n" + yamlMount,
			[]string{"unit.After: duplicate key: give each key once"}},
		{"duplicate deep key",
			`{"command": "/bin/true", "mount": {"kind": "bind", "bind": {"path": "/srv/root", "base": "root", "path": "/"}}}`,
			"command = \"/bin/true\"\n" + tomlMount + "path = \"/\"\n",
			"command: /bin/true\nmount:\n  kind: bind\n  bind:\n    path: /srv/root\n    base: root\n    path: /\n",
			[]string{"mount.bind.path: duplicate key: give each key once"}},
		{"numbers where text is expected, as written",
			`{"command": "/bin/true", "service": {"TasksMax": 4096, "CPUWeight": 1.5, "Delegate": true, "IOWeight": [10, "20"]}, "environment": {"N": -1}, ` + jsonMount + `}`,
			"command = \"/bin/true\"\n[service]\nTasksMax = 4096\nCPUWeight = 1.5\nDelegate = true\nIOWeight = [10, \"20\"]\n[environment]\nN = -1\n" + tomlMount,
			"command: /bin/true\nservice: {TasksMax: 4096, CPUWeight: 1.5, Delegate: true, IOWeight: [10, \"20\"]}\nenvironment: {N: -1}\n" + yamlMount,
			nil},
		{"command quoted as a shell would",
			`{"command": "/bin/sh -c \"echo \\\"hi\\\"\" 'a b' c\\ d", ` + jsonMount + `}`,
			`command = '''/bin/sh -c "echo \"hi\"" 'a b' c\ d'''` + "\n" + tomlMount,
			`command: '/bin/sh -c "echo \"hi\"" ''a b'' c\ d'` + "\n" + yamlMount,
			nil},
		{"command with an operator",
			`{"command": "/bin/echo a;b", ` + jsonMount + `}`,
			"command = \"/bin/echo a;b\"\n" + tomlMount,
			"command: /bin/echo a;b\n" + yamlMount,
			[]string{`command: has an unquoted ";", which a shell reads as an operator: quote it, or run a shell (/bin/sh -c '...')`}},
		{"a wrong type still names the field",
			`{"command": "/bin/true", "systemd": 1, ` + jsonMount + `}`,
			"command = \"/bin/true\"\nsystemd = 1\n" + tomlMount,
			"command: /bin/true\nsystemd: 1\n" + yamlMount,
			[]string{"systemd: expected a boolean (true or false), got an integer (1)"}},
		{"nested 64 levels",
			`{"command": "/bin/true", "x": ` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `, ` + jsonMount + `}`,
			"command = \"/bin/true\"\nx = " + strings.Repeat("[", 63) + strings.Repeat("]", 63) + "\n" + tomlMount,
			"command: /bin/true\nx: " + strings.Repeat("[", 63) + strings.Repeat("]", 63) + "\n" + yamlMount,
			[]string{`x: unknown field "x"; the fields here are: binds, cdi, command, devices, environment, health, mount, name, namespaces, nspawn_args, service, state, systemd, unit`}},
		{"nested 65 levels",
			`{"command": "/bin/true", "x": ` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `, ` + jsonMount + `}`,
			"command = \"/bin/true\"\nx = " + strings.Repeat("[", 64) + strings.Repeat("]", 64) + "\n" + tomlMount,
			"command: /bin/true\nx: " + strings.Repeat("[", 64) + strings.Repeat("]", 64) + "\n" + yamlMount,
			[]string{"nested more than 64 levels (objects and lists inside one another): a definition needs far fewer"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var first *Container
			for _, f := range []struct{ name, doc string }{{"c.json", c.json}, {"c.toml", c.toml}, {"c.yaml", c.yaml}} {
				def, problems := Parse(f.name, []byte(f.doc))
				var got []string
				for _, p := range problems.Errors() {
					got = append(got, strings.TrimPrefix(p.Path+": "+p.Message, ": "))
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Errorf("%s: problems\n%q\nwant\n%q", f.name, got, c.want)
				}
				if def == nil {
					continue
				}
				if first == nil {
					first = def.Container
				} else if !reflect.DeepEqual(def.Container, first) {
					t.Errorf("%s decodes to\n%+v\nJSON to\n%+v", f.name, def.Container, first)
				}
			}
		})
	}
}

// The problems carry the line of the second key, where the format tells.
func TestDuplicateKeyLines(t *testing.T) {
	cases := map[string]string{
		"d.json": "{\"command\": \"/bin/true\",\n \"environment\": {\"A\": \"1\",\n \"A\": \"2\"}}",
		"d.yaml": "command: /bin/true\nbinds:\n- source: /a\n  source: /b\n",
		"d.toml": "command = \"/bin/true\"\n[environment]\nA = \"1\"\n\nA = \"2\"\n",
	}
	want := map[string]string{
		"d.json": "d.json:3: environment.A: duplicate key: give each key once",
		"d.yaml": "d.yaml:4: binds[0].source: duplicate key: give each key once",
		"d.toml": "d.toml:5: environment.A: duplicate key: give each key once",
	}
	for name, doc := range cases {
		if _, problems := Parse(name, []byte(doc)); problems.Error() != want[name] {
			t.Errorf("%s: %s\nwant %s", name, problems.Error(), want[name])
		}
	}
}

// Where text is expected, a number is the text the user wrote: YAML and
// JSON keep it; TOML does not, so there a number written otherwise than Go
// prints it is refused rather than re-spelt.
func TestNumbersKeepTheirText(t *testing.T) {
	yaml := "command: /bin/true\n" + yamlMount + "service: {UMask: 0027, CPUQuota: 1e3, Delegate: True, TasksMax: 0x1F, IOWeight: 99999999999999999999999, LimitNOFILE: 1_000}\n"
	jsonDoc := `{"command": "/bin/true", ` + jsonMount + `, "service": {"UMask": 1e3, "TasksMax": 1.50, "IOWeight": 99999999999999999999999}}`
	for _, c := range []struct {
		name, doc string
		want      map[string]Values
	}{
		{"n.yaml", yaml, map[string]Values{"UMask": {"0027"}, "CPUQuota": {"1e3"}, "Delegate": {"True"}, "TasksMax": {"0x1F"}, "IOWeight": {"99999999999999999999999"}, "LimitNOFILE": {"1_000"}}},
		{"n.json", jsonDoc, map[string]Values{"UMask": {"1e3"}, "TasksMax": {"1.50"}, "IOWeight": {"99999999999999999999999"}}},
		{"n.toml", "command = \"/bin/true\"\n[service]\nTasksMax = 4096\nCPUWeight = 1.5\nUMask = -7\nDelegate = false\n" + tomlMount,
			map[string]Values{"TasksMax": {"4096"}, "CPUWeight": {"1.5"}, "UMask": {"-7"}, "Delegate": {"false"}}},
	} {
		def, problems := Parse(c.name, []byte(c.doc))
		if def == nil {
			t.Errorf("%s: %v", c.name, problems)
			continue
		}
		if !reflect.DeepEqual(def.Container.Service, c.want) {
			t.Errorf("%s: service = %q, want %q", c.name, def.Container.Service, c.want)
		}
	}

	const quote = "TOML keeps a number's value, not how it was written (0o027 would become 23): quote it as the unit should read it"
	for doc, want := range map[string]string{
		"UMask = 0o027\n":                 "service.UMask: expected a string or a list of strings, got an integer (23): " + quote,
		"TasksMax = 1_000\n":              "service.TasksMax: expected a string or a list of strings, got an integer (1000): " + quote,
		"TasksMax = +5\n":                 "service.TasksMax: expected a string or a list of strings, got an integer (5): " + quote,
		"TasksMax = 0x10\n":               "service.TasksMax: expected a string or a list of strings, got an integer (16): " + quote,
		"CPUWeight = 1.50\n":              "service.CPUWeight: expected a string or a list of strings, got a number (1.5): " + quote,
		"CPUWeight = 1e3\n":               "service.CPUWeight: expected a string or a list of strings, got a number (1000): " + quote,
		"IOWeight = [1, 0b1]\n":           "service.IOWeight[0]: expected a string or a list of strings, got an integer (1): " + quote,
		"TasksMax = 23\nUMask = '0o27'\n": "", // quoted: no doubt
	} {
		doc = "command = \"/bin/true\"\n" + tomlMount + "[service]\n" + doc
		_, problems := Parse("n.toml", []byte(doc))
		got := strings.Join(strings.SplitAfterN(problems.Error(), ": ", 2)[1:], "")
		if want == "" && problems.HasErrors() || want != "" && !strings.Contains(problems.Error()+"\n", want+"\n") {
			t.Errorf("%q:\n got %s\nwant %s", doc, got, want)
		}
	}
	// One value spelt two ways: which one a key used is not known.
	_, problems := Parse("n.toml", []byte("command = \"/bin/true\"\n"+tomlMount+"[service]\nTasksMax = 23\n[mount.attach]\nx = 0o27\n"))
	if !strings.Contains(problems.Error(), "service.TasksMax: expected a string or a list of strings, got an integer (23): "+quote) {
		t.Errorf("23 beside 0o27 taken as text: %v", problems)
	}
}

// A YAML integer with a leading zero is octal to yaml.v3 and decimal to
// YAML 1.2: refused where a number is expected, kept as text elsewhere.
func TestLeadingZeroAmbiguous(t *testing.T) {
	iscsi := "command: /bin/true\nservice: {UMask: 0027}\nmount:\n  attach:\n    fs_type: squashfs\n    attach:\n      iscsi:\n        initiator: iqn.2024-01.org.example:n\n        target: iqn.2024-01.org.example:t\n        host: h\n"
	for field, want := range map[string]string{
		"port: 03260": "z.yaml:11: mount.attach.attach.iscsi.port: 03260 has a leading zero, which YAML 1.1 reads as octal and YAML 1.2 as decimal: write it without the zero (0o for octal)",
		"lun: -01":    "z.yaml:11: mount.attach.attach.iscsi.lun: -01 has a leading zero, which YAML 1.1 reads as octal and YAML 1.2 as decimal: write it without the zero (0o for octal)",
		"lun: 0o17":   "",
		"lun: 0":      "",
	} {
		_, problems := Parse("z.yaml", []byte(iscsi+"        "+field+"\n"))
		if want == "" && problems.HasErrors() || want != "" && problems.Error() != want {
			t.Errorf("%s:\n got %s\nwant %s", field, problems.Error(), want)
		}
	}
}

// Infinity and NaN are refused wherever they are, number field, string
// field or secret, never turned into 0 or into text.
func TestInfinityRefused(t *testing.T) {
	const why = `is not a finite number: no field takes infinity or NaN; for systemd's "no limit", write the string "infinity"`
	iscsi := func(format, fields string) string {
		if format == "toml" {
			return "command = \"/bin/true\"\n[mount.attach]\nfs_type = \"squashfs\"\n[mount.attach.attach.iscsi]\ninitiator = \"iqn.2024-01.org.example:n\"\ntarget = \"iqn.2024-01.org.example:t\"\nhost = \"h\"\n" + fields
		}
		return "command: /bin/true\nmount:\n  attach:\n    fs_type: squashfs\n    attach:\n      iscsi:\n        initiator: iqn.2024-01.org.example:n\n        target: iqn.2024-01.org.example:t\n        host: h\n" + fields
	}
	cases := []struct{ file, doc, want string }{
		{"i.toml", "command = \"/bin/true\"\n[service]\nMemoryMax = inf\n" + tomlMount, "i.toml: service.MemoryMax: inf " + why},
		{"i.toml", "command = \"/bin/true\"\n[service]\nMemoryMax = [\"1G\", -inf]\n" + tomlMount, "i.toml: service.MemoryMax[1]: -inf " + why},
		{"i.toml", "command = \"/bin/true\"\n[environment]\nX = nan\n" + tomlMount, "i.toml: environment.X: nan " + why},
		{"i.toml", "command = inf\n" + tomlMount, "i.toml: command: inf " + why},
		{"i.toml", iscsi("toml", "port = +inf\n"), "i.toml: mount.attach.attach.iscsi.port: inf " + why},
		{"i.toml", iscsi("toml", "chap = {username = \"u\", password = nan}\n"), "i.toml: mount.attach.attach.iscsi.chap.password: " + why},
		{"i.yaml", "command: /bin/true\nservice: {MemoryMax: .inf}\n" + yamlMount, "i.yaml:2: service.MemoryMax: .inf " + why},
		{"i.yaml", "command: /bin/true\nenvironment:\n  X: -.Inf\n" + yamlMount, "i.yaml:3: environment.X: -.Inf " + why},
		{"i.yaml", iscsi("yaml", "        lun: .NaN\n"), "i.yaml:10: mount.attach.attach.iscsi.lun: .NaN " + why},
		{"i.yaml", iscsi("yaml", "        chap: {username: u, password: .inf}\n"), "i.yaml:10: mount.attach.attach.iscsi.chap.password: " + why},
	}
	for _, c := range cases {
		def, problems := Parse(c.file, []byte(c.doc))
		if def != nil || !strings.Contains(problems.Error()+"\n", c.want+"\n") {
			t.Errorf("%q:\n got %s\nwant %s", c.doc, problems.Error(), c.want)
		}
	}
}

// Deep nesting is a problem naming the limit, in every format and every
// way of nesting, exactly past 64 levels (the document counts as one).
func TestNestingLimit(t *testing.T) {
	forms := map[string]func(n int) string{ // a document of n levels
		"lists.json":   func(n int) string { return `{"x": ` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}` },
		"objects.json": func(n int) string { return strings.Repeat(`{"x": `, n) + "1" + strings.Repeat("}", n) },
		"flow.yaml":    func(n int) string { return "x: " + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) },
		"flowmap.yaml": func(n int) string { return "x: " + strings.Repeat("{x: ", n-1) + "1" + strings.Repeat("}", n-1) },
		"block.yaml": func(n int) string {
			var b strings.Builder
			for i := 0; i < n-1; i++ {
				b.WriteString(strings.Repeat("  ", i) + "- ")
				if i == n-2 {
					b.WriteString("1")
				}
				b.WriteString("\n")
			}
			return "x:\n" + b.String()[:len(b.String())-1]
		},
		"arrays.toml": func(n int) string { return "x = " + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) },
		"inline.toml": func(n int) string { return "x = " + strings.Repeat("{x = ", n-1) + "1" + strings.Repeat("}", n-1) },
		"dotted.toml": func(n int) string { return strings.Repeat("x.", n-1) + "x = 1" },
		"header.toml": func(n int) string { return "[" + strings.Repeat("x.", n-2) + "x]\ny = 1" },
		"aot.toml":    func(n int) string { return "[[" + strings.Repeat("x.", n-3) + "x]]\ny = 1" },
		"mixed.toml": func(n int) string {
			return "[a.b]\nc.d = [{e = 'x', f.g = [" + strings.Repeat("[", n-8) + strings.Repeat("]", n-8) + "]}]"
		},
		"strings.toml": func(n int) string {
			return "x = ['[[[{{{', \"[[[\\\"[[\", '''\n[[[''', \"\"\"\n{{{\"\"\"] # [[[\n" + strings.Repeat("y.", n-1) + "y = 1"
		},
	}
	const msg = "nested more than 64 levels (objects and lists inside one another): a definition needs far fewer"
	for name, form := range forms {
		if _, problems := Parse(name, []byte(form(64))); strings.Contains(problems.Error(), "nested") {
			t.Errorf("%s: 64 levels refused: %s\n%.200s", name, problems.Error(), form(64))
		}
		if _, problems := Parse(name, []byte(form(65))); !strings.Contains(problems.Error(), msg) {
			t.Errorf("%s: 65 levels: %s\n%.200s", name, problems.Error(), form(65))
		}
	}
	// A few MB of it: refused quickly, without exhausting the stack.
	huge := map[string]string{
		"a.json": strings.Repeat("[", 1<<21),
		"b.json": strings.Repeat(`{"x":`, 1<<19),
		"a.yaml": strings.Repeat("[", 1<<21),
		"b.yaml": strings.Repeat("{x: ", 1<<19),
		"c.yaml": strings.Repeat("- ", 1<<20),
		"a.toml": "x = " + strings.Repeat("[", 1<<21),
		"b.toml": "x = " + strings.Repeat("{x = ", 1<<19),
		"c.toml": strings.Repeat("x.", 1<<20) + "x = 1",
		"d.toml": "[" + strings.Repeat("x.", 1<<20) + "x]",
	}
	for name, doc := range huge {
		start := time.Now()
		_, problems := Parse(name, []byte(doc))
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: %v", name, took)
		}
		if !strings.Contains(problems.Error(), msg) {
			t.Errorf("%s: %.300s", name, problems.Error())
		}
	}
}

// A parser's message may quote the text it stumbled on, which for an
// unquoted key or password is the secret itself: in a file that may hold
// one, only the line is given.
func TestParserErrorsNeverQuoteSecrets(t *testing.T) {
	const secret = "AQBzZ9xvQ2qZZZ"
	leaky := []struct{ file, doc string }{
		{"s.toml", "command = '/x'\n[mount.attach.attach.rbd.options]\nsecret = " + secret + "==\n"},
		{"s.toml", "command = '/x'\n[mount.attach.attach.iscsi.chap]\npassword = [\n " + secret + "\n]\n"},
		{"s.toml", "command = '/x'\nmount.attach.attach.iscsi.chap = {password = " + secret + "}\n"},
		{"s.toml", "command = '/x'\nPassword = 1" + secret + "\n"},
		{"s.toml", "command = '/x'\n\"p\\u0061ssword\" = " + secret + "\n"},
		{"s.toml", "command = '/x'\nkey = " + secret + "\n"},
		{"s.json", "{\"command\": \"/x\", \"secret\":\n " + secret + "}"},
		{"s.json", "{\"command\": \"/x\", \"p\\u0061ssword\": " + secret + "}"},
		{"s.yaml", "command: /x\npassword: !" + secret + " x\n"},
		{"s.yaml", "command: /x\nsecret: \"" + secret + "\\q\"\n"},
		{"s.yaml", "command: /x\n\"p\\x61ssword\": !" + secret + " x\n"},
	}
	for _, c := range leaky {
		_, problems := Parse(c.file, []byte(c.doc))
		_, fieldErr := Field(c.file, []byte(c.doc), "secret")
		for _, text := range []string{problems.Error(), fmt.Sprint(fieldErr)} {
			if !problems.HasErrors() || strings.Contains(text, secret) || strings.Contains(text, "'A'") {
				t.Errorf("%q: %s", c.doc, text)
			}
		}
		if !strings.Contains(problems.Error(), "here (the parser's description is withheld: this file has a key or password field, whose value it could quote)") {
			t.Errorf("%q: %s", c.doc, problems.Error())
		}
	}
	// Without a secret field, the parser's own words help most.
	plain := map[string]string{
		"p.toml": "command = '/x'\nuser = " + secret + "\n",
		"p.json": "{\"command\": \"/x\", \"user\":\n " + secret + "}",
		"p.yaml": "command: /x\nuser: !" + secret + " x\n",
	}
	for file, doc := range plain {
		if _, problems := Parse(file, []byte(doc)); strings.Contains(problems.Error(), "withheld") {
			t.Errorf("%s: %s", file, problems.Error())
		}
	}
}

// Every secret field of the model is among the names that withhold parser
// messages.
func TestSecretNamesCoverModel(t *testing.T) {
	var names []string
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for _, f := range fieldsOf(t) {
			if f.secret {
				names = append(names, f.name)
			}
			walk(t.Field(f.index).Type)
		}
	}
	walk(reflect.TypeOf(Container{}))
	if len(names) < 2 {
		t.Fatalf("secret fields: %v", names)
	}
	for _, n := range names {
		for _, doc := range []string{n + " = x", `"` + n + `": x`, n + ": x", strings.ToUpper(n) + ": x"} {
			if !mayHoldSecret([]byte(doc)) {
				t.Errorf("%q not taken as a secret field", doc)
			}
		}
	}
	for _, doc := range []string{`keyring = "/etc/ceph/k"`, `credential = "/c"`, `username = "u"`} {
		if mayHoldSecret([]byte(doc)) {
			t.Errorf("%q taken as a secret field", doc)
		}
	}
	_ = regexp.MustCompile
}

// A file of very many keys is read in time linear in its size: duplicate
// keys are found through a set, not by searching the keys so far (which
// took 45 s here for these 60,000 keys, against 2 s).
func TestManyKeys(t *testing.T) {
	const n = 60000
	var j, y strings.Builder
	j.WriteString(`{"environment": {`)
	y.WriteString("environment:\n")
	for i := 0; i < n; i++ {
		if i > 0 {
			j.WriteString(",")
		}
		fmt.Fprintf(&j, `"K%d": "v"`, i)
		fmt.Fprintf(&y, "  K%d: v\n", i)
	}
	j.WriteString("}}")
	for f, doc := range map[Format]string{JSON: j.String(), YAML: y.String()} {
		start := time.Now()
		if _, err := parseTree([]byte(doc), f); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 8*time.Second {
			t.Errorf("%s: %d keys in %v", f, n, took)
		}
	}
	for file, doc := range map[string]string{"d.json": `{"K0": 1, "K1": 2, "K0": 3}`, "d.toml": "K0 = 1\nK1 = 2\nK0 = 3", "d.yaml": "K0: 1\nK1: 2\nK0: 3"} {
		if _, problems := Parse(file, []byte(doc)); !strings.Contains(problems.Error(), "K0: duplicate key: give each key once") {
			t.Errorf("%s: %s", file, problems.Error())
		}
	}
}
