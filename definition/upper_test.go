package definition

import (
	"strings"
	"testing"
)

func TestUpperPathProblem(t *testing.T) {
	for p, want := range map[string]string{
		"/":                       `"/" is a system directory, which holds other things: the upper layer needs a directory of its own (its upper/ and work/ are created there), e.g. /var/lib/strata/NAME`,
		"//":                      `"//" is a system directory`,
		"/var/lib/":               `"/var/lib/" is a system directory`,
		"/etc":                    `"/etc" is a system directory`,
		"/home":                   `"/home" is a system directory`,
		"/run":                    `"/run" is a system directory`,
		"/proc/1":                 `"/proc/1" is in /proc, the kernel's: give the container a directory of its own elsewhere, e.g. /var/lib/strata/NAME`,
		"/sys":                    `"/sys" is in /sys, the kernel's`,
		"/dev/shm/x":              `"/dev/shm/x" is in /dev, the kernel's`,
		"/usr/local/upper":        `"/usr/local/upper" is in /usr, the operating system's`,
		"/run/strata/upper/other": `"/run/strata/upper/other" is in /run/strata, Strata's own`,
		"/etc/strata":             `"/etc/strata" is in /etc/strata, Strata's own`,
		"/var/lib/machines/other": `"/var/lib/machines/other" is in /var/lib/machines, where container roots are mounted`,
		"relative":                `path "relative" is not absolute`,
		"/var/lib/strata/p":       "",
		"/var/lib/demo-upper":     "",
		"/srv/containers/a":       "",
		"/home/alice/upper":       "",
		"/run/demo":               "",
		"/var/lib/machinesX":      "",
	} {
		got := UpperPathProblem(p)
		if want == "" && got != "" || !strings.HasPrefix(got, want) {
			t.Errorf("UpperPathProblem(%q) = %q, want %q", p, got, want)
		}
	}
}

// The rule is part of validation, with the field path and line.
func TestUpperPathValidated(t *testing.T) {
	_, problems := Parse("c.yaml", []byte("command: /bin/true\nmount:\n  kind: overlay\n  overlay:\n    lower: [{kind: bind, bind: {path: /srv/base, base: root}}]\n    upper:\n      kind: directory\n      path: /\n"))
	if len(problems) != 1 || problems[0].Path != "mount.overlay.upper.path" || problems[0].Line != 8 || !strings.HasPrefix(problems[0].Message, `"/" is a system directory`) {
		t.Errorf("problems: %v", problems)
	}
}
