package generator

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"

	"github.com/strata-project/strata/definition"
)

// MinimumSystemd is the oldest systemd the core chain (attach service,
// layer and overlay mounts, systemd-nspawn@) works on: EL8's. The package
// depends on it; what needs more is in newerSettings.
const MinimumSystemd = 239

// Systemd is the version of the systemd whose units the generator writes
// (the node's): a setting it does not know would be ignored with a warning,
// so a definition that needs one is refused instead. Unknown (nil, or a
// version of 0) refuses nothing. The generator and strata validate set it
// with DetectSystemd.
var Systemd *Version

// Version is a systemd version learnt when a definition first needs it:
// reading it from the manager's binary means reading megabytes, which no
// boot or reload should pay when no definition uses a newer setting.
type Version struct {
	once sync.Once
	read func() (int, error)
	n    int
	err  error
}

// KnownVersion is version n, read from nowhere.
func KnownVersion(n int) *Version { return LazyVersion(func() (int, error) { return n, nil }) }

// LazyVersion is the version read returns, asked at most once, and only
// when needed. Safe for concurrent use (definitions build in parallel).
func LazyVersion(read func() (int, error)) *Version { return &Version{read: read} }

func (v *Version) get() int {
	if v == nil {
		return 0
	}
	v.once.Do(func() { v.n, v.err = v.read() })
	return v.n
}

// Err says why the version could not be told, once it was needed; nil
// when it was told or never needed.
func (v *Version) Err() error {
	if v == nil {
		return nil
	}
	return v.err
}

// newerSettings are the settings the generator may write that
// MinimumSystemd does not have, with the version that
// added each (systemd's NEWS). Everything else it writes works on 239:
// docs/COMPATIBILITY.md lists it all.
var newerSettings = map[string]feature{
	"LoadCredential":          {"systemd credentials (LoadCredential=)", 247},
	"LoadCredentialEncrypted": {"encrypted credentials (LoadCredentialEncrypted=)", 250},
}

type feature struct {
	what    string
	version int
}

// need refuses the definition when the node's systemd is older than the
// setting key needs; path is the field that asked for it.
func (b *builder) need(key, path, hint string) {
	f, ok := newerSettings[key]
	if !ok {
		return
	}
	node := Systemd.get()
	if node == 0 || node >= f.version {
		return
	}
	msg := fmt.Sprintf("%s need systemd %d or newer; this node runs systemd %d", f.what, f.version, node)
	if hint != "" {
		msg += ": " + hint
	}
	b.s.refused = append(b.s.refused, definition.Problem{File: b.d.Source, Path: path, Severity: definition.Error, Message: msg})
}

// systemdBinaries are where the service manager lives: /proc/1/exe first,
// the running one (a package upgrade replaces the file before PID 1
// re-executes), then the distributions' paths.
var systemdBinaries = []string{"/proc/1/exe", "/usr/lib/systemd/systemd", "/lib/systemd/systemd"}

// versionBanner is the start-up message the manager logs (read from the
// binaries of 247, 252 and 257; EL8's 239 adds its release in parentheses):
// "systemd 252.39-1~deb12u2 running in %ssystem mode", or with the
// distribution's version in parentheses ("systemd 239 (239-78.el8) running").
var versionBanner = regexp.MustCompile(`systemd ([0-9]{3})[^ \x00]* (?:\([^)\x00]*\) )?running in `)

// NodeSystemd reads the version of the systemd installed under root ("/"
// for this node) without asking it over D-Bus, which a generator must not:
// systemd passes generators no version, and libsystemd-shared-NNN.so lives
// in a different directory on every distribution, but the manager's own
// binary holds its start-up banner. The number is the major version.
func NodeSystemd(root string) (int, error) {
	var errs []error
	for _, p := range systemdBinaries {
		if root != "/" && p == "/proc/1/exe" {
			continue // another root's PID 1 is not this one's
		}
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m := versionBanner.FindSubmatch(data); m != nil {
			return strconv.Atoi(string(m[1]))
		}
		errs = append(errs, fmt.Errorf("%s: no systemd version banner", p))
	}
	return 0, fmt.Errorf("cannot tell the systemd version: %v", errs)
}

// SystemdVersionEnv names the systemd version to check definitions against
// instead of this node's: `strata validate` on an admin machine for the
// nodes of a site.
const SystemdVersionEnv = "STRATA_SYSTEMD_VERSION"

// DetectSystemd makes Systemd $STRATA_SYSTEMD_VERSION, else this node's
// systemd, read when a definition first needs it. When neither tells,
// the version is 0 (nothing is refused) and Systemd.Err says why.
func DetectSystemd() {
	Systemd = LazyVersion(func() (int, error) {
		if v := os.Getenv(SystemdVersionEnv); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return 0, fmt.Errorf("$%s=%q: want a systemd version such as 252", SystemdVersionEnv, v)
			}
			return n, nil
		}
		return nodeSystemd()
	})
}

// nodeSystemd reads this node's version (a variable for the tests that
// count its reads).
var nodeSystemd = func() (int, error) { return NodeSystemd("/") }
