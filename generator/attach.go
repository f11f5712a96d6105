package generator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/helpers/iscsi"
	"github.com/strata-project/strata/helpers/krbd"
	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/internal/netid"
	"github.com/strata-project/strata/units"
)

// attachment is a block device that an attach unit provides.
type attachment struct {
	id     string // shared identity, see id()
	unit   string // the attach service
	device string // the path the layer mount mounts
}

// attach converts an attach object (at field path p) into its service.
// readOnly asks for a read-only device where the kind can do that.
func (b *builder) attach(a *definition.Attach, p string, readOnly bool) attachment {
	switch a.Kind {
	case definition.AttachRBD:
		return b.rbd(a.RBD, p+".rbd", readOnly)
	case definition.AttachISCSI:
		return b.iscsi(a.ISCSI, p+".iscsi")
	case definition.AttachLoopback:
		return b.loopback(a.Loopback, p+".loopback", readOnly)
	case definition.AttachLocal:
		return b.local(a.Local)
	}
	panic("generator: unvalidated attach kind " + a.Kind)
}

// attachService configures the attach unit: an instance of the static
// strata-attach@.service template (units/static), which already says how
// to let go (ExecStop=, StopWhenUnneeded=) from the state the helper
// records, so this drop-in only says what to attach and when.
func (b *builder) attachService(att attachment, description string, network bool, start contract.Command) *units.Unit {
	u := units.New(att.unit + ".d/" + layout.DropInName)
	u.Add("Unit", "Description", description)
	u.Add("Unit", "Documentation", "man:strata.definition(5)")
	if network {
		u.Add("Unit", "Wants", "network-online.target")
		u.Add("Unit", "After", "network-online.target")
	}
	u.AddExec("Service", "ExecStart") // reset the template's "nothing to attach"
	u.AddExec("Service", "ExecStart", contract.Argv(start)...)
	return u
}

func (b *builder) rbd(r *definition.RBD, p string, readOnly bool) attachment {
	tail := r.Image
	if r.Snapshot != "" {
		tail += "@" + r.Snapshot
	}
	att := attachment{id: id("rbd", tail, r.Pool, r.Namespace, r.Image, r.Snapshot)}
	att.unit = layout.AttachUnit(att.id)
	att.device = layout.RBDDevicePath(r.Pool, r.Namespace, r.Image, r.Snapshot)

	o := r.Options
	opts := MapOptions(o)
	// A shared layer is mapped read-only unless the definition insists.
	if readOnly && (o.RO == nil || !*o.RO) && (o.RW == nil || !*o.RW) {
		opts = append([]string{"ro"}, opts...)
	}
	rbd := contract.RBD{Pool: r.Pool, Namespace: r.Namespace, Image: r.Image, Snapshot: r.Snapshot}
	m := contract.RBDMap{RBD: rbd, Attachment: att.id, ForceUnmap: o.Force != nil && *o.Force, Monitors: r.Monitors, User: o.Name, Options: opts}
	// The helper checks the map it is asked for with krbd's own rules
	// before writing to the kernel; the same check here makes validate
	// refuse what the helper would (one rule, not two that may drift).
	spec := krbd.Spec{Monitors: m.Monitors, User: m.User, Pool: r.Pool, Namespace: r.Namespace, Image: r.Image, Snapshot: r.Snapshot, Options: opts}
	if err := spec.Validate(); err != nil {
		b.s.refused = append(b.s.refused, definition.Problem{File: b.d.FileOf(p), Path: p, Severity: definition.Error,
			Message: "the node's helper would refuse this map: " + err.Error()})
	}
	var secret string
	var cred *credential
	switch {
	case o.Secret != "":
		m.Secret = contract.Secret{DefinitionFile: b.d.FileOf(p + ".options.secret"), DefinitionField: p + ".options.secret"}
		secret = o.Secret
	case o.Keyring != "":
		m.Secret = contract.Secret{Keyring: o.Keyring}
	case o.Credential != "":
		cred = b.credential("strata-rbd-key", o.Credential, p+".options.credential", "give the key in a keyring file (options.keyring) instead")
		m.Secret = contract.Secret{Credential: cred.name}
	}
	name := r.Pool + "/"
	if r.Namespace != "" {
		name += r.Namespace + "/"
	}
	unit := func(m contract.RBDMap) *units.Unit {
		u := b.attachService(att, "Strata RBD image "+name+tail, true, m)
		cred.addTo(u)
		return u
	}
	u := unit(m)
	if secret != "" {
		anon := m
		anon.Secret = contract.Secret{}
		u.Identity = identity(unit(anon), secret)
	}
	b.s.add(u)
	return att
}

// identity lets two definitions share an attach unit when they hold the
// same inline secret: each unit names its own file as the secret's place,
// so they are compared without it (anon), and by the secret's hash (held in
// memory only, never written).
func identity(anon *units.Unit, secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return string(anon.Bytes()) + "\x00secret:" + hex.EncodeToString(sum[:])
}

// credential is a systemd credential the helper reads a secret from.
type credential struct{ name, path string }

// credential is refused when the node's systemd cannot load it (path is
// the definition's field; fallback says what works on an older systemd).
func (b *builder) credential(name, file, path, fallback string) *credential {
	c := &credential{name: name, path: file}
	hint := fallback
	if c.setting() == "LoadCredentialEncrypted" && Systemd.get() >= newerSettings["LoadCredential"].version {
		hint = "decrypt it (systemd-creds decrypt) to a root-only file and name that, or " + fallback
	}
	b.need(c.setting(), path, hint)
	return c
}

func (c *credential) setting() string {
	// systemd-creds encrypted files are conventionally *.cred.
	if strings.HasSuffix(c.path, ".cred") {
		return "LoadCredentialEncrypted"
	}
	return "LoadCredential"
}

func (c *credential) addTo(u *units.Unit) {
	if c == nil {
		return
	}
	u.Add("Service", c.setting(), c.name+":"+c.path)
}

// MapOptions renders the kernel map options of a definition, in the
// kernel's documented order. imageapi passed only ro, name, secret and the
// namespace and dropped the rest; Strata passes every one.
func MapOptions(o *definition.RBDOptions) []string {
	var out []string
	flag := func(v *bool, yes, no string) {
		if v == nil {
			return
		}
		if *v {
			out = append(out, yes)
		} else if no != "" {
			out = append(out, no)
		}
	}
	num := func(v *int64, key string) {
		if v != nil {
			out = append(out, key+"="+strconv.FormatInt(*v, 10))
		}
	}
	str := func(v, key string) {
		if v != "" {
			out = append(out, key+"="+v)
		}
	}
	str(o.Fsid, "fsid")
	str(o.IP, "ip")
	pair := func(yes, no *bool, y, n string) {
		switch {
		case yes != nil && *yes:
			out = append(out, y)
		case no != nil && *no:
			out = append(out, n)
		case yes != nil: // yes: false
			out = append(out, n)
		case no != nil: // no: false
			out = append(out, y)
		}
	}
	pair(o.Share, o.Noshare, "share", "noshare")
	pair(o.CRC, o.NoCRC, "crc", "nocrc")
	pair(o.CephxRequireSignatures, o.NoCephxRequireSignatures, "cephx_require_signatures", "nocephx_require_signatures")
	pair(o.TCPNodelay, o.NoTCPNodelay, "tcp_nodelay", "notcp_nodelay")
	pair(o.CephxSignMessages, o.NoCephxSignMessages, "cephx_sign_messages", "nocephx_sign_messages")
	num(o.MountTimeout, "mount_timeout")
	num(o.OSDKeepalive, "osdkeepalive")
	num(o.OSDIdleTTL, "osd_idle_ttl")
	flag(o.RW, "rw", "")
	flag(o.RO, "ro", "")
	num(o.QueueDepth, "queue_depth")
	flag(o.LockOnRead, "lock_on_read", "")
	flag(o.Exclusive, "exclusive", "")
	num(o.LockTimeout, "lock_timeout")
	flag(o.Notrim, "notrim", "")
	flag(o.AbortOnFull, "abort_on_full", "")
	num(o.AllocSize, "alloc_size")
	str(o.ReadFromReplica, "read_from_replica")
	str(o.CompressionHint, "compression_hint")
	str(o.MsMode, "ms_mode")
	flag(o.Rxbounce, "rxbounce", "")
	str(o.CrushLocation, "crush_location")
	return out
}

func (b *builder) iscsi(s *definition.ISCSI, p string) attachment {
	// One portal spelt two ways is one attachment: one unit, one reference.
	host := netid.Host(s.Host)
	att := attachment{id: id("iscsi", fmt.Sprintf("lun%d", s.LUN), host, strconv.FormatInt(s.Port, 10), s.Target, strconv.FormatInt(s.LUN, 10))}
	att.unit = layout.AttachUnit(att.id)
	// The helper links the LUN's device here: udev's by-path name depends
	// on the address the session resolves to, unknown at generation.
	att.device = layout.DevDir + "/" + att.id

	target := contract.ISCSI{Host: host, Port: int(s.Port), Target: s.Target, LUN: int(s.LUN)}
	login := contract.ISCSILogin{ISCSI: target, Attachment: att.id, Link: att.device, Initiator: s.Initiator, MaxCommands: int(s.MaxCommands), QueueDepth: int(s.QueueDepth), Scheduler: s.Scheduler}
	// The helper's own check of what reaches iscsiadm, applied here too.
	t := iscsi.Target{Host: host, Port: int(s.Port), Target: s.Target, LUN: int(s.LUN), Initiator: s.Initiator,
		MaxCommands: int(s.MaxCommands), QueueDepth: int(s.QueueDepth), Scheduler: s.Scheduler}
	if s.CHAP != nil {
		t.CHAPUser = s.CHAP.Username
	}
	if err := t.Validate(true); err != nil {
		b.s.refused = append(b.s.refused, definition.Problem{File: b.d.FileOf(p), Path: p, Severity: definition.Error,
			Message: "the node's helper would refuse this login: " + err.Error()})
	}
	var secret string
	var cred *credential
	if c := s.CHAP; c != nil {
		login.CHAPUser = c.Username
		if c.Password != "" {
			login.CHAPSecret = contract.Secret{DefinitionFile: b.d.FileOf(p + ".chap.password"), DefinitionField: p + ".chap.password"}
			secret = c.Password
		} else {
			cred = b.credential("strata-chap-password", c.Credential, p+".chap.credential", "give it as chap.password in a root-only definition file instead")
			login.CHAPSecret = contract.Secret{Credential: cred.name}
		}
	}
	unit := func(login contract.ISCSILogin) *units.Unit {
		u := b.attachService(att, fmt.Sprintf("Strata iSCSI LUN %d of %s", s.LUN, s.Target), true, login)
		u.Add("Unit", "After", "iscsid.service")
		cred.addTo(u)
		return u
	}
	u := unit(login)
	if secret != "" {
		anon := login
		anon.CHAPSecret = contract.Secret{}
		u.Identity = identity(unit(anon), secret)
	}
	b.s.add(u)
	return att
}

func (b *builder) loopback(l *definition.Loopback, p string, readOnly bool) attachment {
	file, deps := b.resolve(l.Base, l.Mount, l.Path, p)
	if l.RO != nil {
		readOnly = *l.RO
	}
	att := attachment{id: id("loop", path.Base(file), file)}
	att.unit = layout.AttachUnit(att.id)
	att.device = layout.DevDir + "/" + att.id

	start := contract.LoopAttach{Attachment: att.id, File: file, ReadOnly: readOnly, Partscan: l.ReadPartitions, Link: att.device}
	u := b.attachService(att, "Strata loop device for "+file, false, start)
	deps.addTo(u)
	b.s.add(u)
	return att
}

func (b *builder) local(l *definition.Local) attachment {
	att := attachment{id: id("local", path.Base(l.Path), l.Path), device: l.Path}
	att.unit = layout.AttachUnit(att.id)
	b.s.add(b.attachService(att, "Strata block device "+l.Path, false, contract.LocalWait{Device: l.Path}))
	return att
}

// verity puts a dm-verity device over an attachment: another instance of
// the attach template, shared by name (the attachment and the root hash:
// two definitions pinning different hashes of one image get two devices,
// and the wrong one fails), needing the attachment under it. The layer
// mounts the verity device, so every block the file system reads is
// checked.
func (b *builder) verity(under attachment, v *definition.Verity) attachment {
	att := attachment{id: id("verity", under.id, verityIdentity(under, v)...)}
	att.unit = layout.AttachUnit(att.id)
	att.device = layout.VerityDevicePath(att.id)
	start := contract.VerityOpen{Attachment: att.id, Name: att.id, Device: under.device, RootHash: v.RootHash, Signed: v.Signed}
	u := b.attachService(att, "Strata verity device over "+under.id, false, start)
	u.Add("Unit", "Requires", under.unit)
	u.Add("Unit", "After", under.unit)
	b.s.add(u)
	return att
}

// verityIdentity is what names a verity device: the attachment and the
// pinned root hash, and whether the signature is checked too (a signed
// device is another device: opening it checks more).
func verityIdentity(under attachment, v *definition.Verity) []string {
	ident := []string{under.id, v.RootHash}
	if v.Signed {
		ident = append(ident, "signed")
	}
	return ident
}
