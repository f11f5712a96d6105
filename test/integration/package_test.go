//go:build integration

package integration

// The .deb that `make package` builds (packaging/build.sh), installed into a
// testbed the way an administrator installs it: dpkg -i, use, upgrade,
// remove, purge. The testbed's root is an overlay that dies with it, so
// dpkg may change it freely.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/strata-project/strata/test/testbed"
)

// buildPackages runs packaging/build.sh into dir, with version ("" for the
// one build.sh derives from git), and returns the .deb's path.
func buildPackages(t *testing.T, dir, version, formats string) string {
	t.Helper()
	cmd := exec.Command("../../packaging/build.sh", dir)
	cmd.Env = append(os.Environ(), "STRATA_PACKAGE_FORMATS="+formats)
	if version != "" {
		cmd.Env = append(cmd.Env, "STRATA_VERSION="+version)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("packaging/build.sh %s: %v\n%s", dir, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "strata_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("packaging/build.sh made %v, want one strata_*.deb\n%s", debs, out)
	}
	return debs[0]
}

// packageFiles are what the strata package must install, with mode and
// owner (directories the package owns included).
var packageFiles = map[string]string{
	"/usr/bin/strata": "755 root root",
	"/usr/lib/systemd/system-generators/strata-generator": "755 root root",
	"/usr/libexec/strata/strata-helper":                   "755 root root",
	"/usr/lib/udev/rules.d/50-strata-rbd.rules":           "644 root root",
	"/usr/share/man/man1/strata.1.gz":                     "644 root root",
	"/usr/share/man/man5/strata.definition.5.gz":          "644 root root",
	"/usr/share/man/man8/strata-generator.8.gz":           "644 root root",
	"/usr/share/bash-completion/completions/strata":       "644 root root",
	"/usr/share/zsh/vendor-completions/_strata":           "644 root root",
	"/usr/share/fish/vendor_completions.d/strata.fish":    "644 root root",
	"/usr/share/doc/strata/README.md":                     "644 root root",
	"/usr/share/doc/strata/copyright":                     "644 root root",
	"/usr/share/doc/strata/changelog.gz":                  "644 root root",
	"/usr/share/lintian/overrides/strata":                 "644 root root",
	"/etc/strata":                                         "700 root root",
	"/usr/lib/strata":                                     "755 root root",
}

// debOnly are the files of packageFiles that only the .deb has (the .rpm
// has its zsh completion elsewhere, and its license as %license).
var debOnly = map[string]bool{
	"/usr/share/zsh/vendor-completions/_strata": true,
	"/usr/share/doc/strata/copyright":           true,
	"/usr/share/doc/strata/changelog.gz":        true,
	"/usr/share/lintian/overrides/strata":       true,
}

// snapshot lists the testbed's files (path, mode, owner), leaving out what
// changes without the package: kernel and runtime file systems, logs,
// caches, dpkg's and systemd's state, and the mount points systemd makes
// for containers that ran (/var/lib/machines).
func snapshot(n *node) []string {
	n.t.Helper()
	out := n.run("find", "/", "-xdev",
		"(", "-path", "/proc", "-o", "-path", "/sys", "-o", "-path", "/dev", "-o", "-path", "/run",
		"-o", "-path", "/tmp", "-o", "-path", "/var/tmp", "-o", "-path", "/var/log", "-o", "-path", "/var/cache",
		"-o", "-path", "/var/lib/dpkg", "-o", "-path", "/var/lib/systemd", "-o", "-path", "/var/lib/machines", ")",
		"-prune", "-o", "-printf", `%p %M %u:%g\n`)
	lines := strings.Split(out, "\n")
	sort.Strings(lines)
	return lines
}

func diff(before, after []string) (gone, added []string) {
	b := map[string]bool{}
	for _, l := range before {
		b[l] = true
	}
	a := map[string]bool{}
	for _, l := range after {
		a[l] = true
		if !b[l] {
			added = append(added, l)
		}
	}
	for _, l := range before {
		if !a[l] {
			gone = append(gone, l)
		}
	}
	return gone, added
}

var notEmpty = regexp.MustCompile(`directory '([^']+)' not empty so not removed`)

var sharedDirs = map[string]bool{
	"/etc/strata":                        true,
	"/usr/lib/systemd/system-generators": true,
	"/usr/lib/systemd/system":            true,
	"/usr/lib/systemd":                   true,
	"/usr/lib/udev/rules.d":              true,
	"/usr/lib/udev":                      true,
}

// dpkg runs dpkg inside the testbed and fails on an error or a warning.
func (n *node) dpkg(args ...string) string {
	n.t.Helper()
	out, code := n.try(append([]string{"dpkg"}, args...)...)
	n.t.Logf("dpkg %v:\n%s", args, out)
	if code != 0 {
		n.t.Fatalf("dpkg %v: exit %d\n%s", args, code, out)
	}
	for _, l := range strings.Split(out, "\n") {
		// dpkg keeps a directory that is not empty, and says so: expected
		// for the administrator's definitions, and for systemd's and udev's
		// directories, which Debian 11's and 12's systemd and udev ship
		// under the /lib alias of merged /usr, so dpkg thinks only strata
		// has them (Debian 11: /usr/lib/systemd/system too).
		if m := notEmpty.FindStringSubmatch(l); m != nil && sharedDirs[m[1]] {
			continue
		}
		if strings.Contains(l, "warning") || strings.Contains(l, "error") {
			n.t.Errorf("dpkg %v: %s", args, l)
		}
	}
	return out
}

// hasDropIn tells whether systemd has the generator's drop-in for a
// container: the generator ran on the last reload.
func (n *node) hasDropIn(name string) bool {
	n.t.Helper()
	out := n.run("systemctl", "show", "-P", "DropInPaths", "systemd-nspawn@"+name+".service")
	return strings.Contains(out, "/run/systemd/generator/systemd-nspawn@"+name+".service.d/50-strata.conf")
}

func (n *node) installedVersion() string {
	n.t.Helper()
	return n.run("dpkg-query", "-W", "-f", "${Version}", "strata")
}

// The package installs where the code expects its files, its postinst
// reloads systemd so that the generator runs at once, the installed
// programs run a container, an upgrade keeps the definitions, remove and
// purge leave only the administrator's definitions, and purging with none
// leaves the system as it was.
func TestPackageInstallUpgradePurge(t *testing.T) {
	first := buildPackages(t, t.TempDir(), "", "deb rpm")
	v1 := strings.Split(filepath.Base(first), "_")[1]
	v2 := v1 + "+pkgtest.2"
	second := buildPackages(t, t.TempDir(), v2, "deb")

	// Both formats come out of one build; the rpm holds the same files.
	if rpm, err := exec.LookPath("rpm"); err == nil {
		rpms, _ := filepath.Glob(filepath.Join(filepath.Dir(first), "strata-[0-9]*.rpm")) // not strata-image
		if len(rpms) != 1 {
			t.Fatalf("no .rpm beside %s: %v", first, rpms)
		}
		out, err := exec.Command(rpm, "-qlp", rpms[0]).CombinedOutput()
		if err != nil {
			t.Fatalf("rpm -qlp: %v\n%s", err, out)
		}
		for f := range packageFiles {
			if !debOnly[f] && !strings.Contains(string(out), f+"\n") {
				t.Errorf("the .rpm lacks %s", f)
			}
		}
		if !strings.Contains(string(out), "/usr/share/licenses/strata/LICENSE\n") {
			t.Error("the .rpm lacks its license, /usr/share/licenses/strata/LICENSE")
		}
	} else {
		t.Error("rpm is needed to check the .rpm (Debian package rpm; run packaging/setup-host.sh)")
	}

	tb, err := testbed.Boot(t, testbed.Options{
		Binds: []testbed.Bind{
			{Host: filepath.Dir(first), Guest: "/srv/pkg/1", ReadOnly: true},
			{Host: filepath.Dir(second), Guest: "/srv/pkg/2", ReadOnly: true},
			{Host: image, Guest: "/srv/images/base.sqfs", ReadOnly: true},
		},
		LoopDevices: 2,
	})
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	n := &node{Testbed: tb, t: t}
	deb1 := "/srv/pkg/1/" + filepath.Base(first)
	deb2 := "/srv/pkg/2/" + filepath.Base(second)
	before := snapshot(n)

	// An administrator's definition written before the package arrives.
	n.run("mkdir", "-m", "0700", "/etc/strata")
	if err := tb.WriteFile("/etc/strata/pkgdemo.json", []byte(demo), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Log("install ", v1)
	n.dpkg("-i", deb1)
	if got := n.installedVersion(); got != v1 {
		t.Errorf("installed version %q, want %q", got, v1)
	}
	listed := n.run("dpkg", "-L", "strata")
	for f, want := range packageFiles {
		if !strings.Contains(listed+"\n", f+"\n") {
			t.Errorf("dpkg -L strata lacks %s", f)
		}
		if got := n.run("stat", "-c", "%a %U %G", f); got != want {
			t.Errorf("%s: %s, want %s", f, got, want)
		}
	}
	if got := n.run("strata", "version"); got != "strata "+v1 {
		t.Errorf("strata version: %q, want %q", got, "strata "+v1)
	}
	for _, page := range []string{"/usr/share/man/man1/strata.1.gz", "/usr/share/man/man5/strata.definition.5.gz", "/usr/share/man/man8/strata-generator.8.gz"} {
		if out := n.run("sh", "-c", "zcat "+page+" | grep -c '^\\.TH '"); out != "1" {
			t.Errorf("%s is not a man page: %s", page, out)
		}
	}
	// The udev rule runs a helper that is there.
	for _, p := range strings.Fields(n.run("sh", "-c", `grep -o 'PROGRAM="[^ "]*' /usr/lib/udev/rules.d/50-strata-rbd.rules | cut -d'"' -f2 | sort -u`)) {
		if _, code := n.try("test", "-x", p); code != 0 {
			t.Errorf("the udev rule runs %s, which is not installed", p)
		}
	}

	// postinst reloaded systemd: the definition that was already there has
	// its units without anyone running daemon-reload.
	if !n.hasDropIn("pkgdemo") {
		t.Errorf("after dpkg -i, systemd has no units for /etc/strata/pkgdemo.json: postinst did not reload")
	}
	// The installed generator runs on every reload.
	if err := tb.WriteFile("/etc/strata/second.json", []byte(demo), 0o600); err != nil {
		t.Fatal(err)
	}
	n.run("systemctl", "daemon-reload")
	if !n.hasDropIn("second") {
		t.Errorf("after daemon-reload, no units for /etc/strata/second.json")
	}
	// The installed CLI, generator and helper run a container.
	n.run("strata", "start", "pkgdemo")
	if out := n.run("machinectl", "list", "--no-legend"); !strings.Contains(out, "pkgdemo") {
		t.Errorf("machinectl list does not show pkgdemo:\n%s", out)
	}
	chain := n.strataUnits()
	if len(chain) == 0 {
		t.Fatal("no Strata unit is loaded while pkgdemo runs")
	}
	n.run("strata", "stop", "pkgdemo")
	n.waitInactive(chain...)
	n.assertReleased()

	t.Log("upgrade to ", v2)
	n.dpkg("-i", deb2)
	if got := n.installedVersion(); got != v2 {
		t.Errorf("after the upgrade, version %q, want %q", got, v2)
	}
	if got := n.run("strata", "version"); got != "strata "+v2 {
		t.Errorf("after the upgrade, strata version: %q", got)
	}
	if got := n.run("ls", "/etc/strata"); got != "pkgdemo.json\nsecond.json" {
		t.Errorf("after the upgrade, /etc/strata holds %q", got)
	}
	if !n.hasDropIn("pkgdemo") || !n.hasDropIn("second") {
		t.Errorf("after the upgrade, the containers' units are gone")
	}

	t.Log("remove")
	n.dpkg("-r", "strata")
	for f := range packageFiles {
		_, code := n.try("test", "-e", f)
		keep := f == "/etc/strata" // holds the definitions
		if keep && code != 0 {
			t.Errorf("dpkg -r removed %s, which holds the administrator's definitions", f)
		}
		if !keep && code == 0 {
			t.Errorf("dpkg -r left %s", f)
		}
	}
	if got := n.run("ls", "/etc/strata"); got != "pkgdemo.json\nsecond.json" {
		t.Errorf("after dpkg -r, /etc/strata holds %q", got)
	}
	// postrm reloaded systemd: the generator's units are gone.
	if n.hasDropIn("pkgdemo") {
		t.Errorf("after dpkg -r, systemd still has the generator's units")
	}
	if left := n.run("find", "/run/systemd/generator", "-name", "*strata*"); left != "" {
		t.Errorf("after dpkg -r, generated files left:\n%s", left)
	}
	if st := n.run("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "strata"); st != "rc" {
		t.Errorf("after dpkg -r, status %q, want rc (config-files: purge still to do)", st)
	}

	t.Log("purge, with definitions left")
	out := n.dpkg("-P", "strata")
	if !strings.Contains(out, "/etc/strata is not empty") {
		t.Errorf("dpkg -P did not say why /etc/strata stays:\n%s", out)
	}
	if got := n.run("ls", "/etc/strata"); got != "pkgdemo.json\nsecond.json" {
		t.Errorf("after dpkg -P, /etc/strata holds %q", got)
	}
	if out, code := n.try("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "strata"); code == 0 && strings.TrimSpace(out) != "un" {
		t.Errorf("after dpkg -P, status %q", out)
	}

	t.Log("install again and purge, with no definition")
	n.run("rm", "/etc/strata/pkgdemo.json", "/etc/strata/second.json")
	n.dpkg("-i", deb2)
	n.dpkg("-P", "strata")
	after := snapshot(n)
	gone, added := diff(before, after)
	if len(gone)+len(added) > 0 {
		t.Errorf("install and purge changed the system:\ngone: %q\nleft: %q", gone, added)
	}
}
