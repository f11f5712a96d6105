package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	clitable "github.com/strata-project/strata/cmd/strata/cli"
)

// completionEnv makes a directory with the generated scripts, a definition
// directory (alpha.json, beta.yaml, a masked name, a file that is no
// definition), a working directory with files to complete, and a fake
// `strata` whose `list --json` reports "fromlist" (or fails, when broken).
type completionEnv struct {
	scripts, defs, cwd, bin string
}

func newCompletionEnv(t *testing.T, listWorks bool) completionEnv {
	t.Helper()
	dir := t.TempDir()
	e := completionEnv{
		scripts: filepath.Join(dir, "scripts"),
		defs:    filepath.Join(dir, "defs"),
		cwd:     filepath.Join(dir, "cwd"),
		bin:     filepath.Join(dir, "bin"),
	}
	for n, b := range generated(t) {
		if strings.HasPrefix(n, "completions/") {
			p := filepath.Join(e.scripts, filepath.Base(n))
			mustWrite(t, p, string(b), 0o644)
		}
	}
	mustWrite(t, filepath.Join(e.defs, "alpha.json"), "{}", 0o600)
	mustWrite(t, filepath.Join(e.defs, "beta.yaml"), "", 0o600)
	mustWrite(t, filepath.Join(e.defs, "notes.txt"), "", 0o600)
	if err := os.Symlink("/dev/null", filepath.Join(e.defs, "masked.json")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(e.cwd, "x.json"), "{}", 0o644)
	mustWrite(t, filepath.Join(e.cwd, "y.txt"), "", 0o644)
	if err := os.MkdirAll(filepath.Join(e.cwd, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	fake := "#!/bin/sh\nexit 1\n"
	if listWorks {
		// The shape of `strata list --json`; the machine repeats the name.
		fake = `#!/bin/sh
[ "$1 $2" = "list --json" ] || exit 2
echo '{"containers":[{"name":"fromlist","source":"/x/fromlist.json","machine":{"name":"fromlist"},"layers":[]}]}'
`
	}
	mustWrite(t, filepath.Join(e.bin, "strata"), fake, 0o755)
	return e
}

func mustWrite(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
}

func (e completionEnv) run(t *testing.T, name string, args ...string) []string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = e.cwd
	cmd.Env = []string{
		"PATH=" + e.bin + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + filepath.Dir(e.cwd),
		"XDG_CONFIG_HOME=" + filepath.Join(filepath.Dir(e.cwd), "config"),
		"XDG_DATA_HOME=" + filepath.Join(filepath.Dir(e.cwd), "data"),
		"STRATA_DEFINITION_PATH=" + e.defs,
		"LC_ALL=C.UTF-8",
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return lines
}

func shell(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed to check its completion (Debian package %s; run packaging/setup-host.sh)", name, pkg)
	}
	return p
}

// Every script parses in its shell.
func TestCompletionsParse(t *testing.T) {
	e := newCompletionEnv(t, true)
	e.run(t, shell(t, "bash", "bash"), "-n", filepath.Join(e.scripts, "strata"))
	e.run(t, shell(t, "zsh", "zsh"), "-n", filepath.Join(e.scripts, "_strata"))
	e.run(t, shell(t, "fish", "fish"), "--no-config", "-n", filepath.Join(e.scripts, "strata.fish"))
}

// The scripts offer every command and every flag of the usage text.
func TestCompletionsCoverUsage(t *testing.T) {
	c, err := readCLI(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	for n, b := range generated(t) {
		if !strings.HasPrefix(n, "completions/") {
			continue
		}
		for _, cmd := range c.Commands {
			if !strings.Contains(string(b), cmd.Name) {
				t.Errorf("%s lacks command %s", n, cmd.Name)
			}
			for _, f := range cmd.Flags {
				if !strings.Contains(string(b), strings.TrimLeft(f.Name, "-")) {
					t.Errorf("%s lacks flag %s of %s", n, f.Name, cmd.Name)
				}
			}
		}
	}
}

func eq(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

func commandNames(t *testing.T) []string {
	c, err := readCLI(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, cmd := range c.Commands {
		names = append(names, cmd.Name)
	}
	return names
}

// bash, as bash-completion calls it: COMP_WORDS, COMP_CWORD, then the
// function; COMPREPLY is the answer.
func TestBashCompletion(t *testing.T) {
	bash := shell(t, "bash", "bash")
	complete := func(e completionEnv, words ...string) []string {
		script := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _strata; printf '%s\n' "${COMPREPLY[@]}"`
		return e.run(t, bash, append([]string{"-c", script, "bash", filepath.Join(e.scripts, "strata")}, words...)...)
	}
	e := newCompletionEnv(t, true)
	eq(t, "commands", complete(e, "strata", ""), commandNames(t)...)
	eq(t, "st", complete(e, "strata", "st"), "start", "status", "stop")
	eq(t, "names", complete(e, "strata", "start", ""), "alpha", "beta", "fromlist")
	eq(t, "names after a flag", complete(e, "strata", "stop", "--no-block", ""), "alpha", "beta", "fromlist")
	eq(t, "flags", complete(e, "strata", "status", "--"), "--json")
	eq(t, "--output", complete(e, "strata", "render", "--output", ""), "sub")
	eq(t, "definitions", complete(e, "strata", "validate", ""), "sub", "x.json")
	eq(t, "no operand", complete(e, "strata", "version", ""))
	eq(t, "--explain", complete(e, "strata", "render", "--explain", ""), "alpha", "beta", "fromlist")
	eq(t, "a value to type", complete(e, "strata", "logs", "-n", ""))
	eq(t, "names after a value", complete(e, "strata", "logs", "-n", "5", ""), "alpha", "beta", "fromlist")
	eq(t, "one-letter flags", complete(e, "strata", "logs", "-"), "-f", "--machine", "-n", "--since")

	broken := newCompletionEnv(t, false)
	eq(t, "names without systemd", complete(broken, "strata", "restart", ""), "alpha", "beta")
}

// fish answers `complete -C` with "candidate<TAB>description" lines.
func TestFishCompletion(t *testing.T) {
	fish := shell(t, "fish", "fish")
	complete := func(e completionEnv, line string) []string {
		out := e.run(t, fish, "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, filepath.Join(e.scripts, "strata.fish"), line)
		for i, l := range out {
			out[i], _, _ = strings.Cut(l, "\t")
		}
		return out
	}
	e := newCompletionEnv(t, true)
	eq(t, "commands", complete(e, "strata "), commandNames(t)...)
	eq(t, "names", complete(e, "strata start "), "alpha", "beta", "fromlist")
	eq(t, "flags", complete(e, "strata status --"), "--json")
	eq(t, "--output", complete(e, "strata render --output "), "sub/")
	eq(t, "definitions", complete(e, "strata validate "), "sub/", "x.json")
	eq(t, "--explain", complete(e, "strata render --explain "), "alpha", "beta", "fromlist")
	eq(t, "a value to type", complete(e, "strata logs -n "))
	eq(t, "one-letter flags", complete(e, "strata logs -"), "--machine", "--since", "-f", "-n")

	broken := newCompletionEnv(t, false)
	eq(t, "names without systemd", complete(broken, "strata stop "), "alpha", "beta")
}

// zsh's completion system needs a terminal; its functions are called here
// with stand-ins for _arguments, _describe and compadd that print what
// they are given.
func TestZshCompletion(t *testing.T) {
	zsh := shell(t, "zsh", "zsh")
	stubs := `
_describe() { print -l -- "${(@P)4}" }
_arguments() { print -l -- "$@" }
_message() { print -- "message: $*" }
_wanted() { shift 3; "$@" }
compadd() { [[ $1 == -a ]] && print -l -- "${(@P)2}" }
`
	call := func(e completionEnv, body string, words ...string) []string {
		script := stubs + `f=$1; shift; words=("$@"); CURRENT=$#; source $f >/dev/null; words=("$@"); CURRENT=$#; ` + body
		return e.run(t, zsh, append([]string{"-f", "-c", script, "zsh", filepath.Join(e.scripts, "_strata")}, words...)...)
	}
	e := newCompletionEnv(t, true)
	var cmds []string
	for _, l := range call(e, `_strata`, "strata", "") {
		name, _, _ := strings.Cut(l, ":")
		cmds = append(cmds, name)
	}
	eq(t, "commands", cmds, commandNames(t)...)
	eq(t, "start", call(e, `_strata`, "strata", "start", ""), "--no-block", "*:container:_strata_names")
	eq(t, "render", call(e, `_strata`, "strata", "render", ""), "--explain=:name:_strata_names", "--output=:dir:_files -/", "*:definition file or directory:_strata_definitions")
	eq(t, "logs", call(e, `_strata`, "strata", "logs", ""), "-f", "--machine", "-n=:n:", "--since=:time:", "*:container:_strata_names")
	eq(t, "names", call(e, `_strata_names`, "strata", "start", ""), "alpha", "beta", "fromlist")
	broken := newCompletionEnv(t, false)
	eq(t, "names without systemd", call(broken, `_strata_names`, "strata", "start", ""), "alpha", "beta")
}

// Commands the CLI may grow (subcommand words, plain files, flags with a
// file argument) still make scripts that parse.
func TestCompletionsAllOperandKinds(t *testing.T) {
	c := fromTable([]clitable.Command{
		{Name: "image", Flags: []clitable.Flag{{Name: "--keyring", Arg: "FILE"}, {Name: "--json"}}, Operand: "build|push IMAGE", Summary: "manage images"},
		{Name: "copy", Flags: []clitable.Flag{{Name: "--to", Arg: "DIR"}}, Operand: "FILE...", Summary: "copy files"},
		{Name: "ping", Summary: "no operand"},
	}, nil, "")
	kinds := map[string]string{}
	for _, cmd := range c.Commands {
		kinds[cmd.Name] = cmd.OperandKind()
	}
	if kinds["image"] != "words" || kinds["copy"] != "file" || kinds["ping"] != "none" {
		t.Errorf("operand kinds: %v", kinds)
	}
	if f := c.Commands[0].Flags; len(f) != 2 || f[0] != (flagSpec{"--keyring", "FILE"}) || f[1] != (flagSpec{"--json", ""}) {
		t.Errorf("image flags: %+v", f)
	}
	if f := c.Commands[1].Flags; len(f) != 1 || f[0] != (flagSpec{"--to", "DIR"}) {
		t.Errorf("copy flags: %+v", f)
	}
	files, err := renderCompletions(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	check := map[string][]string{
		"completions/bash/strata":      {shell(t, "bash", "bash"), "-n"},
		"completions/zsh/_strata":      {shell(t, "zsh", "zsh"), "-n"},
		"completions/fish/strata.fish": {shell(t, "fish", "fish"), "--no-config", "-n"},
	}
	for name, b := range files {
		p := filepath.Join(dir, filepath.Base(name))
		mustWrite(t, p, string(b), 0o644)
		args := append(check[name][1:], p)
		if out, err := exec.Command(check[name][0], args...).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s\n%s", name, err, out, b)
		}
		if !strings.Contains(string(b), "build") || !strings.Contains(string(b), "push") {
			t.Errorf("%s does not offer image's words", name)
		}
	}
}
