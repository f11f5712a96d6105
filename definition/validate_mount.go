package definition

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/strata-project/strata/internal/layout"
)

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
	if a.Verity != nil {
		v.verity(a.Verity, join(path, "verity"))
		if slices.Contains(a.MountOptions, "rw") {
			v.errorf(join(path, "mount_options"), "\"rw\" with verity: a verified device is read-only; drop \"rw\" or verity")
		}
	}
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

// rootHash is a sha256 root hash as veritysetup and strata image build print it.
var rootHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (v *validator) verity(vr *Verity, path string) {
	switch h := vr.RootHash; {
	case h == "" && vr.Signed:
	case h == "":
		v.errorf(join(path, "root_hash"), "is required: the root hash strata image build printed (64 hex digits), unless \"signed\": true trusts the image's signed root hash instead")
	case !rootHash.MatchString(strings.ToLower(h)):
		v.errorf(join(path, "root_hash"), "%q is not a sha256 root hash: want 64 hex digits (0-9, a-f), as strata image build prints it", h)
	default:
		vr.RootHash = strings.ToLower(h)
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
			u.Size = layout.DefaultUpperSize
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
