//go:build linux

package krbd

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// A fleet booting from one snapshot reads the same few objects at once, and
// by default every read goes to the object's primary OSD, so a handful of
// primaries serve the whole boot storm. read_from_replica=balance (Linux
// 5.8, libceph's "support for balanced and localized reads") sends each
// read to a random OSD of the PG's acting set instead, spreading the load
// over all replicas.
//
// The kernel does not check the cluster's require_osd_release: it sets the
// flag and the OSD either serves the read, drops it (the client resends
// when the acting set changes) or answers EAGAIN (the client resends to the
// primary). Before Octopus a replica could serve uncommitted or unstable
// state of an object being written, which is why Ceph calls balance safe
// for general use only from Octopus on; a snapshot is never written, so
// its reads are safe from any replica on any release. So the default is
// for snapshot mappings only: the image head, even mapped read-only, may
// have a writer elsewhere.

// replicaReadsSince is the first Linux release whose libceph knows
// read_from_replica (optionSince has the same).
var replicaReadsSince = [2]int{5, 8}

// replicaReadDefault is the option a snapshot mapping gets when its
// definition says nothing about replica reads.
const replicaReadDefault = "read_from_replica=balance"

// withReplicaReads returns the options to map spec with: its own, plus
// read_from_replica=balance when spec is a snapshot, its options do not
// set read_from_replica, and the running kernel (release, as uname -r
// says) is new enough. The reason is for the log; "" when nothing was added.
func withReplicaReads(spec Spec, release string) ([]string, string) {
	if spec.Snapshot == "" {
		return spec.Options, ""
	}
	if _, set := optionValue(spec.Options, "read_from_replica"); set {
		return spec.Options, ""
	}
	v, ok := kernelVersion(release)
	if !ok || v[0] < replicaReadsSince[0] || v[0] == replicaReadsSince[0] && v[1] < replicaReadsSince[1] {
		return spec.Options, ""
	}
	opts := append(append([]string(nil), spec.Options...), replicaReadDefault)
	why := fmt.Sprintf("reading snapshot %s from all replicas (%s: a snapshot never changes, and Linux %s has the option)", spec, replicaReadDefault, release)
	return opts, why
}

// kernelVersion reads major and minor from a release such as
// "6.1.0-13-amd64" or "5.14.0-362.el9.x86_64".
func kernelVersion(release string) ([2]int, bool) {
	parts := strings.SplitN(strings.TrimSpace(release), ".", 3)
	if len(parts) < 2 {
		return [2]int{}, false
	}
	major, err := strconv.Atoi(parts[0])
	if err != nil {
		return [2]int{}, false
	}
	minor := parts[1]
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i]
	}
	n, err := strconv.Atoi(minor)
	if err != nil {
		return [2]int{}, false
	}
	return [2]int{major, n}, true
}

// kernelRelease is the running kernel's release ("" when unreadable, which
// adds no default).
func (m *Mapper) kernelRelease() string {
	if m.KernelRelease != nil {
		return m.KernelRelease()
	}
	b, err := os.ReadFile(osrelease)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
