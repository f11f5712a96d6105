package definition

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// validator checks what a definition means, after binding. It also fills in
// defaults, so the rest of Strata sees one canonical form.
type validator struct {
	file     string
	lines    map[string]int
	problems Problems
	badType  map[string]bool // paths the binder already reported
}

func (v *validator) errorf(path, format string, args ...any) {
	if v.badType[path] {
		return // "is required" after "expected a string" says nothing new
	}
	v.problems = append(v.problems, Problem{File: v.file, Line: v.line(path), Path: path, Severity: Error, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) warnf(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{File: v.file, Line: v.line(path), Path: path, Severity: Warning, Message: fmt.Sprintf(format, args...)})
}

// line is the source line of path, or of the nearest enclosing object
// when the field itself is missing.
func (v *validator) line(path string) int {
	for {
		if l, ok := v.lines[path]; ok && l > 0 {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return v.lines[""]
		}
		path = path[:i]
	}
}

// systemdInits are the commands that are systemd itself, as Debian and
// others install it: run without systemd: true they do not boot.
var systemdInits = []string{"/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init", "/usr/sbin/init"}

func (v *validator) container(c *Container, name string) {
	v.checkStrings(c)
	if c.Name != "" && c.Name != name {
		v.errorf("name", "%q differs from the file name, which names the container (%q): rename the file to %s.<ext> or drop the field", c.Name, name, c.Name)
	}
	c.Name = name

	words, err := SplitCommand(c.Command)
	switch {
	case c.Command == "":
		v.errorf("command", "is required: the program to run in the container, e.g. /usr/lib/systemd/systemd")
	case err != nil:
		v.errorf("command", "%v", err)
	case len(words) == 0:
		v.errorf("command", "is blank: give the program to run in the container")
	case c.Systemd && !strings.HasPrefix(words[0], "/"):
		v.errorf("command", "%q must be an absolute path when systemd is true (it is the container's init)", words[0])
	case !c.Systemd && slices.Contains(systemdInits, words[0]):
		v.warnf("command", "%q is systemd, but systemd is false (the default), so it runs as a plain command and does not boot: set systemd: true to boot it", words[0])
	}

	switch c.State {
	case "":
		c.State = StateCreated
	case StateRunning, StateCreated, StateStopped:
	case "restarting", "paused", "exited", "dead", "stopping":
		v.errorf("state", "%q is a state imageapi reported, not one a definition asks for: use \"running\" (start at boot) or \"created\"/\"stopped\" (start on demand)", c.State)
	default:
		v.errorf("state", "%q is not a state: use \"running\" (start at boot) or \"created\"/\"stopped\" (start on demand)", c.State)
	}

	for i, ns := range c.Namespaces {
		p := fmt.Sprintf("namespaces[%d]", i)
		if !slices.Contains([]string{"cgroup", "ipc", "net", "mnt", "pid", "time", "user", "uts"}, ns) {
			v.errorf(p, "%q is not a Linux namespace: use cgroup, ipc, net, mnt, pid, time, user or uts", ns)
		}
	}
	if len(c.Namespaces) > 0 {
		v.warnf("namespaces", "ignored, as imageapi did: systemd-nspawn always gives the container its own mount, PID, IPC, UTS and cgroup namespaces; use nspawn_args (e.g. --private-network, -U) for more")
	}

	if c.Mount == nil {
		v.errorf("mount", "is required: the container's root file system")
	} else {
		v.mount(c.Mount, "mount", true)
	}

	v.extensions(c)
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
var settingName = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)

// serviceOwned are [Service] settings the container unit depends on.
var serviceOwned = []string{"ExecStart", "Type", "NotifyAccess", "RemainAfterExit"}

func (v *validator) extensions(c *Container) {
	for _, k := range slices.Sorted(maps.Keys(c.Environment)) {
		p := join("environment", k)
		if !envName.MatchString(k) {
			v.errorf(p, "%q is not a valid environment variable name: use letters, digits and '_', not starting with a digit", k)
		}
	}
	for i := range c.Binds {
		b := &c.Binds[i]
		p := fmt.Sprintf("binds[%d]", i)
		if b.Source == "" {
			v.errorf(p+".source", "is required: the host directory to bind into the container")
		} else if msg := PathProblem(b.Source); msg != "" {
			v.errorf(p+".source", "%s", msg)
		}
		if b.Target == "" {
			b.Target = b.Source
		} else if msg := PathProblem(b.Target); msg != "" {
			v.errorf(p+".target", "%s", msg)
		}
		if strings.Contains(b.Source, ":") || strings.Contains(b.Target, ":") {
			v.errorf(p, "paths with ':' cannot be passed to systemd-nspawn --bind")
		}
	}
	v.nspawnArgs(c.NspawnArgs)
	v.devices(c.Devices)
	v.cdi(c.CDI)
	v.health(c.Health)
	v.settings("unit", c.Unit, []string{"SourcePath"})
	v.settings("service", c.Service, serviceOwned)
}

func (v *validator) settings(section string, m map[string]Values, owned []string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p := join(section, k)
		switch {
		case !settingName.MatchString(k):
			v.errorf(p, "%q is not a systemd setting name (e.g. MemoryMax, CPUQuota, After)", k)
		case slices.Contains(owned, k):
			v.errorf(p, "%s is set by Strata and cannot be overridden here", k)
		}
	}
}

// pickKind resolves a kind-discriminated object: kind names which of the
// variant fields is used. An absent kind is inferred when exactly one
// variant is present.
func (v *validator) pickKind(path, kind string, present map[string]bool, kinds []string) string {
	var have []string
	for _, k := range kinds {
		if present[k] {
			have = append(have, k)
		}
	}
	if kind == "" {
		if len(have) == 1 {
			return have[0]
		}
		v.errorf(join(path, "kind"), "is required: one of %s", oneOf(kinds...))
		return ""
	}
	if !slices.Contains(kinds, kind) {
		if s := suggest(kind, kinds); s != "" {
			v.errorf(join(path, "kind"), "%q is not a kind here; did you mean %q?", kind, s)
		} else {
			v.errorf(join(path, "kind"), "%q is not a kind here: use %s", kind, oneOf(kinds...))
		}
		return ""
	}
	if !present[kind] {
		v.errorf(path, "kind is %q but there is no %q object: add \"%s\": {...}", kind, kind, kind)
		return ""
	}
	for _, k := range have {
		if k != kind {
			v.errorf(join(path, k), "kind is %q, so this %q object would be ignored: remove it or change kind", kind, k)
		}
	}
	return kind
}
