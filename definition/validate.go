package definition

import (
	"encoding/base64"
	"fmt"
	"math/bits"
	"net/netip"
	"regexp"
	"slices"
	"sort"
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
	for _, k := range sortedKeys(c.Environment) {
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
	for _, k := range sortedKeys(m) {
		p := join(section, k)
		switch {
		case !settingName.MatchString(k):
			v.errorf(p, "%q is not a systemd setting name (e.g. MemoryMax, CPUQuota, After)", k)
		case slices.Contains(owned, k):
			v.errorf(p, "%s is set by Strata and cannot be overridden here", k)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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

func (v *validator) mount(m *Mount, path string, top bool) {
	if m.Ref != nil && m.Attach == nil && m.Bind == nil && m.NFS == nil && m.Overlay == nil && m.URI == nil {
		return // an imageapi reference: the binder said why it cannot be
	}
	kind := v.pickKind(path, m.Kind, map[string]bool{
		MountAttach: m.Attach != nil, MountBind: m.Bind != nil, MountNFS: m.NFS != nil,
		MountOverlay: m.Overlay != nil, MountURI: m.URI != nil,
	}, []string{MountAttach, MountBind, MountNFS, MountOverlay, MountURI})
	m.Kind = kind
	switch kind {
	case MountAttach:
		v.attachMount(m.Attach, join(path, "attach"), top)
	case MountBind:
		v.bindMount(m.Bind, join(path, "bind"))
	case MountNFS:
		v.nfsMount(m.NFS, join(path, "nfs"))
	case MountOverlay:
		if !top {
			v.errorf(path, "an overlay cannot be a layer of another overlay: list its lower mounts in this overlay's lower directly")
			return
		}
		v.overlayMount(m.Overlay, join(path, "overlay"))
	case MountURI:
		v.errorf(path, "uri mounts (download an image into a ramdisk) were never implemented by imageapi, and Strata does not download at boot: build a squashfs image and attach it with rbd, iscsi, loopback or nfs")
	}
}

func (v *validator) attachMount(a *AttachMount, path string, top bool) {
	if a.Attach == nil {
		v.errorf(join(path, "attach"), "is required: what provides the block device (rbd, iscsi, loopback or local)")
	} else {
		v.attach(a.Attach, join(path, "attach"))
		if a.Kind != "" && a.Attach.Kind != "" && a.Kind != a.Attach.Kind {
			v.errorf(join(path, "kind"), "%q contradicts attach.kind %q (this leftover field of imageapi v0.1 may be dropped)", a.Kind, a.Attach.Kind)
		}
	}
	switch {
	case a.FSType == "":
		v.errorf(join(path, "fs_type"), "is required: the file system on the device, e.g. squashfs, erofs or ext4")
	case !slices.Contains(FSTypes, a.FSType):
		msg := fmt.Sprintf("%q is not a file system Strata mounts from a block device", a.FSType)
		if s := suggest(a.FSType, FSTypes); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		} else {
			msg += ": use one of " + strings.Join(FSTypes, ", ")
		}
		v.errorf(join(path, "fs_type"), "%s", msg)
	}
	v.mountOptions(a.MountOptions, join(path, "mount_options"))
	// imageapi set up a loop device for the "loop" option; Strata does
	// that with a loopback attachment.
	if a.Attach != nil && a.Attach.Kind == AttachLocal && a.Attach.Local != nil && slices.Contains(a.MountOptions, "loop") {
		ro := true
		a.Attach = &Attach{Kind: AttachLoopback, Loopback: &Loopback{Path: a.Attach.Local.Path, Base: BaseRoot, RO: &ro}}
		a.MountOptions = slices.DeleteFunc(a.MountOptions, func(o string) bool { return o == "loop" })
	} else if slices.Contains(a.MountOptions, "loop") {
		v.errorf(join(path, "mount_options"), "\"loop\" is only meaningful with a local attach of an image file; use attach kind \"loopback\" instead")
	}
}

// FSTypes are the file systems Strata mounts from an attached block device.
var FSTypes = []string{"squashfs", "erofs", "ext4", "ext3", "ext2", "xfs", "btrfs", "f2fs", "vfat", "exfat", "iso9660", "udf"}

// mountOption is one option of mount(8)'s -o: libmount splits at ',' and
// reads '"' as quoting, and '\' escapes in fstab-style text.
var mountOption = regexp.MustCompile(`^[A-Za-z0-9_.+-]+(=[^,\s"\\]*)?$`)

func (v *validator) mountOptions(opts []string, path string) {
	for i, o := range opts {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case strings.HasPrefix(o, "x-systemd."), o == "nofail", o == "noauto", o == "auto", o == "_netdev":
			v.errorf(p, "%q is an fstab/systemd option, not a mount option: Strata orders and starts the mounts itself", o)
		case !mountOption.MatchString(o):
			v.errorf(p, "%q is not a mount option: one word or key=value per entry, without spaces, commas, quotes or backslashes", o)
		}
	}
}

func (v *validator) bindMount(b *BindMount, path string) {
	v.base(b.Base, b.Mount, path)
	switch {
	case b.Path == "":
		v.errorf(join(path, "path"), "is required: the directory to bind")
	case b.Base == BaseRoot:
		if msg := PathProblem(b.Path); msg != "" {
			v.errorf(join(path, "path"), "%s", msg)
		}
	default:
		if msg := PathProblem("/" + strings.TrimPrefix(b.Path, "/")); msg != "" {
			v.errorf(join(path, "path"), "%s", msg)
		}
	}
}

// base checks the base/mount pair of bind and loopback objects.
func (v *validator) base(base string, m *Mount, path string) {
	switch base {
	case BaseRoot:
		if m != nil {
			v.errorf(join(path, "mount"), "is only used with base \"mount\"; base is \"root\" (the host's /)")
		}
	case BaseMount:
		if m == nil {
			v.errorf(join(path, "mount"), "is required with base \"mount\": the mount the path is relative to")
		} else {
			v.mount(m, join(path, "mount"), false)
		}
	case "":
		v.errorf(join(path, "base"), "is required: \"root\" (path on the host) or \"mount\" (path inside the mount given in \"mount\")")
	default:
		v.errorf(join(path, "base"), "%q is not a base: use \"root\" or \"mount\"", base)
	}
}

func (v *validator) nfsMount(n *NFSMount, path string) {
	if n.Host == "" {
		v.errorf(join(path, "host"), "is required: the NFS server")
	} else if msg := HostProblem(n.Host); msg != "" {
		v.errorf(join(path, "host"), "%s", msg)
	}
	if n.Path == "" {
		v.errorf(join(path, "path"), "is required: the exported directory")
	} else if msg := PathProblem(n.Path); msg != "" {
		v.errorf(join(path, "path"), "%s", msg)
	}
	switch n.Version {
	case "":
		n.Version = "4.2"
	case "3", "4", "4.0", "4.1", "4.2":
	default:
		v.errorf(join(path, "version"), "%q is not an NFS version: use 3, 4, 4.0, 4.1 or 4.2", n.Version)
	}
	v.mountOptions(n.Options, join(path, "options"))
	for i, o := range n.Options {
		if k, _, _ := strings.Cut(o, "="); k == "vers" || k == "nfsvers" || k == "clientaddr" {
			v.errorf(fmt.Sprintf("%s[%d]", join(path, "options"), i), "%q is set by Strata (version from \"version\"; clientaddr is chosen by the kernel): remove it", k)
		}
	}
}

func (v *validator) overlayMount(o *OverlayMount, path string) {
	if len(o.Lower) == 0 {
		v.errorf(join(path, "lower"), "needs at least one mount: the read-only layers (lower[0] is the top one)")
	}
	for i, l := range o.Lower {
		p := fmt.Sprintf("%s[%d]", join(path, "lower"), i)
		if l == nil {
			v.errorf(p, "is null: give a mount")
			continue
		}
		v.mount(l, p, false)
		v.lowerPaths(l, p)
	}
	if o.Upper == nil {
		o.Upper = &Upper{}
	}
	u, up := o.Upper, join(path, "upper")
	switch u.Kind {
	case "", UpperTmpfs:
		u.Kind = UpperTmpfs
		if u.Path != "" {
			v.errorf(join(up, "path"), "is only used with kind \"directory\"")
		}
		if u.Size == "" {
			u.Size = DefaultUpperSize
		} else if !tmpfsSize.MatchString(u.Size) {
			v.errorf(join(up, "size"), "%q is not a tmpfs size: write bytes with an optional k, m or g suffix (e.g. 2g), or a percentage of RAM (e.g. 25%%)", u.Size)
		}
	case UpperDirectory:
		if u.Path == "" {
			v.errorf(join(up, "path"), "is required with kind \"directory\": where the writable layer persists")
		} else if msg := UpperPathProblem(u.Path); msg != "" {
			v.errorf(join(up, "path"), "%s", msg)
		} else if msg := OverlayPathProblem(u.Path); msg != "" {
			v.errorf(join(up, "path"), "%s", msg)
		}
		if u.Size != "" {
			v.errorf(join(up, "size"), "only a tmpfs upper has a size cap")
		}
	default:
		v.errorf(join(up, "kind"), "%q is not an upper kind: use \"tmpfs\" (default, discarded on stop) or \"directory\" (persistent)", u.Kind)
	}
}

// lowerPaths checks the paths that a lower layer puts into lowerdir=: those
// of a bind lower, and of the binds it is based on. Other lowers are
// mounted under names Strata chooses.
func (v *validator) lowerPaths(m *Mount, path string) {
	for m != nil && m.Kind == MountBind && m.Bind != nil {
		p := join(join(path, "bind"), "path")
		if msg := OverlayPathProblem(m.Bind.Path); msg != "" {
			v.errorf(p, "%s", msg)
		}
		m, path = m.Bind.Mount, join(join(path, "bind"), "mount")
	}
}

var tmpfsSize = regexp.MustCompile(`^([1-9][0-9]*[kKmMgG]?|([1-9][0-9]?|100)%)$`)

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
		o.Name = "admin"
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
		{"port", &s.Port, DefaultISCSIPort, 1, 65535},
		{"max_comands", &s.MaxCommands, DefaultISCSIMaxCommands, 1, 1 << 20},
		{"queue_depth", &s.QueueDepth, DefaultISCSIQueueDepth, 1, 1 << 16},
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
		s.Scheduler = DefaultISCSIScheduler
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
