package definition

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/strata-project/strata/internal/layout"
)

// A directory upper (upper.path) must be dedicated to its container:
// strata-helper overlay-prepare creates upper/ and work/ in it, overlayfs
// writes there, and the container's changes live there. These rules are
// the ones one definition can be checked for; that two definitions do not
// share an upper (or nest one in another) is checked by the generator.

// systemDirs are the host's own directories (the file system hierarchy's
// top levels and /var's shared ones), which hold other things: never an
// upper path themselves. A directory of one's own below them is fine
// (e.g. /var/lib/strata/NAME, /srv/containers/NAME).
var systemDirs = []string{
	"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
	"/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",
	"/usr", "/usr/local", "/var", "/var/cache", "/var/lib", "/var/local", "/var/lock",
	"/var/log", "/var/mail", "/var/opt", "/var/run", "/var/spool", "/var/tmp",
}

// reservedTrees are trees no upper may be in, at any depth: the kernel's
// (/proc, /sys, /dev: not file systems to keep files in), the OS vendor's
// (/usr, /boot: package-managed, often read-only), Strata's own
// (definitions, layers, tmpfs uppers, device links, helper state) and the
// container roots (an upper there would sit inside a container).
var reservedTrees = []string{
	"/proc", "/sys", "/dev", "/usr", "/boot",
	"/etc/strata", layout.RunDir, "/usr/lib/strata", layout.MachinesDir,
}

// UpperPathProblem checks a directory upper's path (after PathProblem's
// checks) and returns what is wrong with it, or "".
func UpperPathProblem(p string) string {
	if msg := PathProblem(p); msg != "" {
		return msg
	}
	clean := path.Clean(p)
	for _, tree := range reservedTrees {
		if clean == tree || strings.HasPrefix(clean, tree+"/") {
			return fmt.Sprintf("%q is in %s, %s: give the container a directory of its own elsewhere, e.g. /var/lib/strata/NAME", p, tree, reservedWhy(tree))
		}
	}
	if slices.Contains(systemDirs, clean) {
		return fmt.Sprintf("%q is a system directory, which holds other things: the upper layer needs a directory of its own (its upper/ and work/ are created there), e.g. /var/lib/strata/NAME", p)
	}
	return ""
}

func reservedWhy(tree string) string {
	switch tree {
	case "/proc", "/sys", "/dev":
		return "the kernel's"
	case "/usr", "/boot":
		return "the operating system's"
	case layout.MachinesDir:
		return "where container roots are mounted"
	}
	return "Strata's own"
}
