//go:build linux

package krbd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/strata-project/strata/internal/layout"
)

// snapHead is what the kernel shows in current_snap, and expects as the
// snapshot token, for the image head (RBD_SNAP_HEAD_NAME).
const snapHead = "-"

// maxSnapNameLen is RBD_MAX_SNAP_NAME_LEN (NAME_MAX minus "snap_"): the
// kernel fails a longer snapshot token with ENAMETOOLONG.
const maxSnapNameLen = 255 - len("snap_")

// Spec says what to map and how.
type Spec struct {
	// Monitors as an admin writes them: "1.2.3.4", "1.2.3.4:6789",
	// "[::1]:3300", "v2:1.2.3.4:3300", "mon.example.com", or a pasted
	// mon_host value. Which address is used depends on ms_mode (see pick).
	Monitors []string `json:"monitors"`
	// User is the cephx id without "client." ("admin" when empty).
	User      string `json:"user,omitempty"`
	Pool      string `json:"pool"`
	Namespace string `json:"namespace,omitempty"`
	Image     string `json:"image"`
	// Snapshot is empty for the image head; a snapshot is always mapped
	// read-only by the kernel.
	Snapshot string `json:"snapshot,omitempty"`
	// Options are the kernel's map options in order, each "name" or
	// "name=value" (e.g. "ro", "queue_depth=128", "ms_mode=secure").
	Options []string `json:"options,omitempty"`
	// Resolver resolves monitor host names; nil uses DefaultResolver.
	Resolver Resolver `json:"-"`
}

// user returns the cephx id, defaulted, without a "client." prefix (which
// admins often copy from keyring section names).
func (s Spec) user() string {
	u := strings.TrimPrefix(s.User, "client.")
	if u == "" {
		return layout.DefaultCephUser
	}
	return u
}

// keyName is the kernel keyring description libceph's request_key looks up
// for key=: the full entity name.
func (s Spec) keyName() string { return "client." + s.user() }

// snapToken is the snapshot as the kernel writes and reads it.
func (s Spec) snapToken() string {
	if s.Snapshot == "" {
		return snapHead
	}
	return s.Snapshot
}

// String names the image the way rbd does: pool[/ns]/image[@snap].
func (s Spec) String() string {
	var b strings.Builder
	b.WriteString(s.Pool)
	b.WriteByte('/')
	if s.Namespace != "" {
		b.WriteString(s.Namespace)
		b.WriteByte('/')
	}
	b.WriteString(s.Image)
	if s.Snapshot != "" {
		b.WriteByte('@')
		b.WriteString(s.Snapshot)
	}
	return b.String()
}

// Validate checks everything that can be checked without the network: the
// names, the user, the options. Monitors are checked for syntax here and
// resolved when the line is rendered.
func (s Spec) Validate() error {
	var errs []error
	if len(s.Monitors) == 0 {
		errs = append(errs, errors.New("no monitors given"))
	} else if _, err := parseMonitors(s.Monitors); err != nil {
		errs = append(errs, err)
	}
	if err := checkName("cephx user", strings.TrimPrefix(s.User, "client."), true, ",="); err != nil {
		errs = append(errs, err)
	}
	if err := checkName("pool", s.Pool, false, "/"); err != nil {
		errs = append(errs, err)
	}
	// The namespace travels inside the options token as _pool_ns=NS.
	if err := checkName("namespace", s.Namespace, true, "/,"); err != nil {
		errs = append(errs, err)
	}
	if err := checkName("image", s.Image, false, "/@"); err != nil {
		errs = append(errs, err)
	}
	if err := checkName("snapshot", s.Snapshot, true, "/"); err != nil {
		errs = append(errs, err)
	}
	if s.Snapshot == snapHead {
		errs = append(errs, errors.New(`snapshot "-" means the image head to the kernel: leave Snapshot empty for the head`))
	}
	if len(s.Snapshot) > maxSnapNameLen {
		errs = append(errs, fmt.Errorf("snapshot name is %d bytes, the kernel accepts at most %d", len(s.Snapshot), maxSnapNameLen))
	}
	if err := ValidateOptions(s.Options); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkName refuses what the kernel's line parser or the udev link cannot
// carry: whitespace splits the line into tokens, control characters have no
// place in it, '/' would make /dev/rbd/POOL[/NS]/IMAGE ambiguous, and
// "." or ".." would escape that directory.
func checkName(what, v string, mayBeEmpty bool, forbidden string) error {
	if v == "" {
		if mayBeEmpty {
			return nil
		}
		return fmt.Errorf("%s is empty", what)
	}
	if strings.IndexFunc(v, isLineSeparator) >= 0 {
		return fmt.Errorf("%s %q contains whitespace, which the kernel's line parser cannot carry", what, v)
	}
	if strings.IndexFunc(v, isControl) >= 0 {
		return fmt.Errorf("%s %q contains a control character", what, v)
	}
	if i := strings.IndexAny(v, forbidden); i >= 0 {
		return fmt.Errorf("%s %q contains %q", what, v, v[i])
	}
	if v == "." || v == ".." {
		return fmt.Errorf("%s %q is not a usable name", what, v)
	}
	return nil
}
