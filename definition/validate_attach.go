package definition

import (
	"encoding/base64"
	"fmt"
	"math/bits"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/strata-project/strata/internal/layout"
)

func (v *validator) attach(a *Attach, path string) {
	if a.ID != nil && a.RBD == nil && a.ISCSI == nil && a.Loopback == nil && a.Local == nil {
		return // an imageapi reference: the binder said why it cannot be
	}
	kind := v.pickKind(path, a.Kind, map[string]bool{
		AttachRBD: a.RBD != nil, AttachISCSI: a.ISCSI != nil, AttachLoopback: a.Loopback != nil, AttachLocal: a.Local != nil,
	}, []string{AttachRBD, AttachISCSI, AttachLoopback, AttachLocal})
	a.Kind = kind
	switch kind {
	case AttachRBD:
		v.rbd(a.RBD, join(path, "rbd"))
	case AttachISCSI:
		v.iscsi(a.ISCSI, join(path, "iscsi"))
	case AttachLoopback:
		l, p := a.Loopback, join(path, "loopback")
		v.base(l.Base, l.Mount, p)
		if l.Path == "" {
			v.errorf(join(p, "path"), "is required: the image file")
		} else if msg := PathProblem("/" + strings.TrimPrefix(l.Path, "/")); msg != "" {
			v.errorf(join(p, "path"), "%s", msg)
		} else if l.Base == BaseRoot && !strings.HasPrefix(l.Path, "/") {
			v.errorf(join(p, "path"), "%q is relative; with base \"root\" write the absolute path on the host", l.Path)
		}
	case AttachLocal:
		l, p := a.Local, join(path, "local")
		if l.Path == "" {
			v.errorf(join(p, "path"), "is required: the block device, e.g. /dev/disk/by-label/image")
		} else if msg := PathProblem(l.Path); msg != "" {
			v.errorf(join(p, "path"), "%s", msg)
		}
	}
}

func (v *validator) rbd(r *RBD, path string) {
	if len(r.Monitors) == 0 {
		v.errorf(join(path, "monitors"), "needs at least one Ceph monitor address, e.g. [\"192.168.3.253\"]")
	}
	for i, m := range r.Monitors {
		if msg := MonitorProblem(m); msg != "" {
			v.errorf(fmt.Sprintf("%s[%d]", join(path, "monitors"), i), "%s", msg)
		}
	}
	if r.Pool == "" {
		v.errorf(join(path, "pool"), "is required: the Ceph pool holding the image, e.g. \"rbd\"")
	} else if msg := CephNameProblem("pool", r.Pool); msg != "" {
		v.errorf(join(path, "pool"), "%s", msg)
	}
	if r.Image == "" {
		v.errorf(join(path, "image"), "is required: the RBD image name")
	} else if msg := CephNameProblem("image", r.Image); msg != "" {
		v.errorf(join(path, "image"), "%s", msg)
	}
	if r.Snapshot != "" {
		if msg := CephNameProblem("snapshot", r.Snapshot); msg != "" {
			v.errorf(join(path, "snapshot"), "%s", msg)
		}
	}
	if r.Options == nil {
		r.Options = &RBDOptions{}
	}
	o, op := r.Options, join(path, "options")
	nsPath := join(path, "namespace")
	if o.Namespace != "" {
		if r.Namespace != "" && r.Namespace != o.Namespace {
			v.errorf(join(op, "namespace"), "%q contradicts namespace %q: give it once", o.Namespace, r.Namespace)
		}
		if r.Namespace == "" {
			nsPath = join(op, "namespace") // where the file says it
		}
		r.Namespace = o.Namespace
	}
	if r.Namespace != "" {
		if msg := CephNameProblem("namespace", r.Namespace); msg != "" {
			v.errorf(nsPath, "%s", msg)
		}
	}
	v.rbdOptions(o, op)
}

func (v *validator) rbdOptions(o *RBDOptions, path string) {
	if o.Name == "" {
		o.Name = layout.DefaultCephUser
	} else if msg := CephxIDProblem(o.Name); msg != "" {
		v.errorf(join(path, "name"), "%s", msg)
	}
	sources := 0
	for _, s := range []string{o.Secret, o.Keyring, o.Credential} {
		if s != "" {
			sources++
		}
	}
	if sources > 1 {
		v.errorf(path, "give the cephx key one way: secret, keyring or credential")
	}
	if o.Secret != "" {
		if _, err := base64.StdEncoding.DecodeString(o.Secret); err != nil {
			v.errorf(join(path, "secret"), "is not base64: give the key as `ceph auth get-key client.%s` prints it", o.Name)
		}
	}
	for _, f := range []struct{ name, value string }{{"keyring", o.Keyring}, {"credential", o.Credential}} {
		if f.value != "" {
			if msg := PathProblem(f.value); msg != "" {
				v.errorf(join(path, f.name), "%s", msg)
			}
		}
	}

	// imageapi's misspelt signature options mean the kernel's ones.
	merge := func(dst **bool, src *bool, from, to string) {
		if src == nil {
			return
		}
		if *dst != nil && **dst != *src {
			v.errorf(join(path, from), "contradicts %s", to)
		}
		*dst = src
	}
	merge(&o.CephxRequireSignatures, o.CephRequiresSignatures, "ceph_requires_signatures", "cephx_require_signatures")
	merge(&o.NoCephxRequireSignatures, o.NoCephRequiresSignatures, "noceph_requires_signatures", "nocephx_require_signatures")
	o.CephRequiresSignatures, o.NoCephRequiresSignatures = nil, nil

	pairs := []struct {
		yes, no *bool
		y, n    string
	}{
		{o.RO, o.RW, "ro", "rw"},
		{o.Share, o.Noshare, "share", "noshare"},
		{o.CRC, o.NoCRC, "crc", "nocrc"},
		{o.CephxRequireSignatures, o.NoCephxRequireSignatures, "cephx_require_signatures", "nocephx_require_signatures"},
		{o.TCPNodelay, o.NoTCPNodelay, "tcp_nodelay", "notcp_nodelay"},
		{o.CephxSignMessages, o.NoCephxSignMessages, "cephx_sign_messages", "nocephx_sign_messages"},
	}
	for _, p := range pairs {
		if p.yes != nil && p.no != nil && *p.yes && *p.no {
			v.errorf(join(path, p.n), "contradicts %s: set one of them", p.y)
		}
	}

	positive := func(name string, val *int64, min int64) {
		if val != nil && *val < min {
			v.errorf(join(path, name), "must be at least %d", min)
		}
	}
	positive("mount_timeout", o.MountTimeout, 0)
	positive("osdkeepalive", o.OSDKeepalive, 1)
	positive("osd_idle_ttl", o.OSDIdleTTL, 1)
	positive("queue_depth", o.QueueDepth, 1)
	positive("lock_timeout", o.LockTimeout, 0)
	if o.AllocSize != nil && (*o.AllocSize < 512 || bits.OnesCount64(uint64(*o.AllocSize)) != 1) {
		v.errorf(join(path, "alloc_size"), "must be a power of two of at least 512 (bytes)")
	}
	enum := func(name, val string, allowed ...string) {
		if val != "" && !slices.Contains(allowed, val) {
			v.errorf(join(path, name), "%q is not accepted by the kernel: use %s", val, oneOf(allowed...))
		}
	}
	enum("read_from_replica", o.ReadFromReplica, "no", "balance", "localize")
	enum("compression_hint", o.CompressionHint, "none", "compressible", "incompressible")
	enum("ms_mode", o.MsMode, "legacy", "crc", "secure", "prefer-crc", "prefer-secure")
	if o.Fsid != "" && !uuidRE.MatchString(o.Fsid) {
		v.errorf(join(path, "fsid"), "%q is not a cluster fsid (a UUID such as 6f1c1a2e-...)", o.Fsid)
	}
	if o.IP != "" {
		if a, err := netip.ParseAddr(o.IP); err != nil {
			v.errorf(join(path, "ip"), "%q is not an IP address", o.IP)
		} else if msg := ZoneProblem(a); msg != "" {
			v.errorf(join(path, "ip"), "%s", msg)
		}
	}
	if o.CrushLocation != "" && !crushLocation.MatchString(o.CrushLocation) {
		v.errorf(join(path, "crush_location"), "%q is not a CRUSH location: write type:name pairs joined by '|', e.g. host:node1|rack:r2", o.CrushLocation)
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
var crushLocation = regexp.MustCompile(`^[A-Za-z0-9_-]+:[A-Za-z0-9_.-]+(\|[A-Za-z0-9_-]+:[A-Za-z0-9_.-]+)*$`)

func (v *validator) iscsi(s *ISCSI, path string) {
	for _, f := range []struct{ name, what, value string }{{"initiator", "initiator name", s.Initiator}, {"target", "target name", s.Target}} {
		if f.value == "" {
			v.errorf(join(path, f.name), "is required: the %s (iqn....)", f.what)
		} else if msg := ISCSINameProblem(f.what, f.value); msg != "" {
			v.errorf(join(path, f.name), "%s", msg)
		}
	}
	if s.Host == "" {
		v.errorf(join(path, "host"), "is required: the iSCSI portal's address")
	} else if msg := HostProblem(strings.Trim(s.Host, "[]")); msg != "" {
		v.errorf(join(path, "host"), "%s", msg)
	}
	defaults := []struct {
		name     string
		val      *int64
		def, min int64
		max      int64
	}{
		{"port", &s.Port, layout.DefaultISCSIPort, 1, 65535},
		{"max_comands", &s.MaxCommands, layout.DefaultISCSIMaxCommands, 1, 1 << 20},
		{"queue_depth", &s.QueueDepth, layout.DefaultISCSIQueueDepth, 1, 1 << 16},
	}
	for _, d := range defaults {
		if _, set := v.lines[join(path, d.name)]; !set && *d.val == 0 {
			*d.val = d.def
		}
		if *d.val < d.min || *d.val > d.max {
			v.errorf(join(path, d.name), "%d is out of range: use %d to %d", *d.val, d.min, d.max)
		}
	}
	if s.LUN < 0 || s.LUN > 16383 {
		v.errorf(join(path, "lun"), "%d is not a LUN: use 0 to 16383", s.LUN)
	}
	switch s.Scheduler {
	case "":
		s.Scheduler = layout.DefaultISCSIScheduler
	case "mq-deadline", "none", "bfq", "kyber":
	default:
		v.errorf(join(path, "scheduler"), "%q is not a block I/O scheduler: use mq-deadline, none, bfq or kyber", s.Scheduler)
	}
	if c := s.CHAP; c != nil {
		cp := join(path, "chap")
		if c.Username == "" {
			v.errorf(join(cp, "username"), "is required for CHAP")
		}
		if (c.Password == "") == (c.Credential == "") {
			v.errorf(cp, "give the CHAP password one way: password or credential")
		}
		if c.Credential != "" {
			if msg := PathProblem(c.Credential); msg != "" {
				v.errorf(join(cp, "credential"), "%s", msg)
			}
		}
	}
}
