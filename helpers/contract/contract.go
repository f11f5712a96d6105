// Package contract defines the command lines by which generated units call
// the node-side helper, strata-helper. The generator builds them with Argv;
// the helper parses them with Parse. Both sides use only this package, so
// the contract lives in one place (documented in docs/HELPER.md).
//
// Command lines carry no secrets: a key or password is named by where the
// helper reads it at run time (a field of the definition file, a keyring
// file, or a systemd credential).
package contract

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/strata-project/strata/internal/layout"
)

// Verbs of the helper, one per action a unit needs.
const (
	VerbRBDMap         = "rbd-map"
	VerbRBDUnmap       = "rbd-unmap"
	VerbISCSILogin     = "iscsi-login"
	VerbISCSILogout    = "iscsi-logout"
	VerbLoopAttach     = "loop-attach"
	VerbLoopDetach     = "loop-detach"
	VerbLocalWait      = "local-wait"
	VerbVerityOpen     = "verity-open"
	VerbVerityClose    = "verity-close"
	VerbOverlayPrepare = "overlay-prepare"
	VerbFail           = "fail"
	VerbRelease        = "release"
	VerbGC             = "gc"
	VerbStarted        = "started"
	VerbHealth         = "health"
	VerbCDI            = "cdi"
)

// Secret says where the helper reads a key or password at run time.
// At most one field is set; none means "no secret" (or, for rbd, the
// default keyring /etc/ceph/ceph.client.ID.keyring when it exists).
type Secret struct {
	DefinitionFile  string // a definition file holding the secret inline...
	DefinitionField string // ...at this field path
	Keyring         string // a Ceph keyring file
	Credential      string // a systemd credential name ($CREDENTIALS_DIRECTORY/NAME)
}

func (s *Secret) flags(fs *flag.FlagSet) {
	fs.StringVar(&s.DefinitionFile, "secret-file", "", "definition file holding the secret")
	fs.StringVar(&s.DefinitionField, "secret-field", "", "field path of the secret in --secret-file")
	fs.StringVar(&s.Keyring, "keyring", "", "Ceph keyring file")
	fs.StringVar(&s.Credential, "credential", "", "systemd credential name")
}

func (s Secret) args() []string {
	var a []string
	a = opt(a, "secret-file", s.DefinitionFile)
	a = opt(a, "secret-field", s.DefinitionField)
	a = opt(a, "keyring", s.Keyring)
	return opt(a, "credential", s.Credential)
}

// RBD names one image (and snapshot) of a pool and namespace.
type RBD struct {
	Pool, Namespace, Image, Snapshot string
}

func (r *RBD) flags(fs *flag.FlagSet) {
	fs.StringVar(&r.Pool, "pool", "", "pool")
	fs.StringVar(&r.Namespace, "namespace", "", "namespace")
	fs.StringVar(&r.Image, "image", "", "image")
	fs.StringVar(&r.Snapshot, "snapshot", "", "snapshot")
}

func (r RBD) args() []string {
	a := opt(nil, "pool", r.Pool)
	a = opt(a, "namespace", r.Namespace)
	a = opt(a, "image", r.Image)
	return opt(a, "snapshot", r.Snapshot)
}

// RBDMap maps an image through the kernel (krbd) and waits for its device.
type RBDMap struct {
	RBD
	Attachment string   // the ID its release is recorded under (strata-attach@ID)
	ForceUnmap bool     // release with RBDUnmap.Force
	Monitors   []string // as written in the definition
	User       string   // cephx id, without "client."
	Options    []string // kernel map options, "key" or "key=value"; never secrets
	Secret     Secret
}

// RBDUnmap unmaps the image's mapping when no one holds it.
type RBDUnmap struct {
	RBD
	Force bool
}

// ISCSI names one LUN of a target behind a portal.
type ISCSI struct {
	Host   string
	Port   int
	Target string
	LUN    int
}

func (i *ISCSI) flags(fs *flag.FlagSet) {
	fs.StringVar(&i.Host, "host", "", "portal host")
	fs.IntVar(&i.Port, "port", layout.DefaultISCSIPort, "portal port")
	fs.StringVar(&i.Target, "target", "", "target IQN")
	fs.IntVar(&i.LUN, "lun", 0, "LUN")
}

func (i ISCSI) args() []string {
	a := opt(nil, "host", i.Host)
	a = append(a, fmt.Sprintf("--port=%d", i.Port))
	a = opt(a, "target", i.Target)
	return append(a, fmt.Sprintf("--lun=%d", i.LUN))
}

// ISCSILogin discovers and logs in to a target, tunes the LUN's queue, and
// points Link at the LUN's device: udev's by-path name depends on the
// address the session runs to, which the generator cannot know.
type ISCSILogin struct {
	ISCSI
	Attachment  string // the ID its release is recorded under
	Link        string
	Initiator   string
	MaxCommands int
	QueueDepth  int
	Scheduler   string
	CHAPUser    string
	CHAPSecret  Secret
}

// ISCSILogout removes Link and logs out of the target when no LUN of it is
// in use any more.
type ISCSILogout struct {
	ISCSI
	Link string
}

// LoopAttach attaches a file to a loop device and points Link at it.
type LoopAttach struct {
	Attachment string // the ID its release is recorded under
	File       string
	ReadOnly   bool
	Partscan   bool
	Link       string
}

// LoopDetach detaches the loop device Link points at, and removes Link.
type LoopDetach struct{ Link string }

// LocalWait waits until Device exists and is a block device.
type LocalWait struct{ Device string }

// VerityOpen opens the dm-verity device Name over Device, whose hash tree
// (located by the trailer in its last block) must hash to RootHash, or,
// with Signed, to the root hash the image's signature vouches for (both
// when both are given).
type VerityOpen struct {
	Attachment string // the ID its release is recorded under
	Name       string // the device-mapper name: /dev/mapper/NAME
	Device     string
	RootHash   string
	Signed     bool // check the image's root hash signature against the trust store
}

// VerityClose closes the dm-verity device Name.
type VerityClose struct{ Name string }

// OverlayPrepare creates the upper and work directories under Dir.
type OverlayPrepare struct{ Dir string }

// Fail prints Messages (a definition's problems, one per line) and exits
// non-zero: the placeholder unit of a broken definition runs it, so that
// `systemctl status` shows why the container cannot start.
type Fail struct{ Messages []string }

// Release lets go of a recorded attachment (the ExecStop= of the
// strata-attach@ID.service template): it runs the release command the
// attach verb recorded, so it needs no definition.
type Release struct{ Attachment string }

// GC releases Strata's mounts and attachments that no unit file describes
// any more and that nothing in use needs (a roll-out's old layers, what a
// removed or broken definition left). Container, when set, names a
// container known to be stopped (its own clean-up), whose root may go.
type GC struct {
	Container string
	DryRun    bool
	JSON      bool // print what is (or would be) released as JSON (gc.Report)
}

// Started records that a container started from units of Generation.
type Started struct{ Container, Generation string }

// Health runs a container's health check (Command, in the container) and
// records the result. After Retries failures in a row it applies
// OnFailure (restart, stop, none) to the container unit. Timeout and
// Gate are Go durations (time.ParseDuration). Reset only
// forgets past results (at the container's start); Gate, a time span,
// makes it retry every second for that long until a check passes,
// failing if none does (the container's readiness gate).
type Health struct {
	Container string
	Retries   int
	OnFailure string
	Timeout   string
	Gate      string
	Reset     bool
	Command   []string
}

// CDI resolves Container Device Interface devices from the node's specs
// for Container's start: it allows their device nodes on the container
// unit and writes the nspawn options they need (binds, environment) to
// EnvFile, as the variable STRATA_CDI_ARGS.
type CDI struct {
	Container string
	Devices   []string
	EnvFile   string
}

// Command is any of the commands above.
type Command interface{ verb() string }

func (RBDMap) verb() string         { return VerbRBDMap }
func (RBDUnmap) verb() string       { return VerbRBDUnmap }
func (ISCSILogin) verb() string     { return VerbISCSILogin }
func (ISCSILogout) verb() string    { return VerbISCSILogout }
func (LoopAttach) verb() string     { return VerbLoopAttach }
func (LoopDetach) verb() string     { return VerbLoopDetach }
func (LocalWait) verb() string      { return VerbLocalWait }
func (VerityOpen) verb() string     { return VerbVerityOpen }
func (VerityClose) verb() string    { return VerbVerityClose }
func (OverlayPrepare) verb() string { return VerbOverlayPrepare }
func (Fail) verb() string           { return VerbFail }
func (Release) verb() string        { return VerbRelease }
func (GC) verb() string             { return VerbGC }
func (Started) verb() string        { return VerbStarted }
func (Health) verb() string         { return VerbHealth }
func (CDI) verb() string            { return VerbCDI }

// ReleaseOf returns the command that undoes an attach command, or nil for
// commands that attach nothing.
func ReleaseOf(c Command) Command {
	switch c := c.(type) {
	case RBDMap:
		return RBDUnmap{RBD: c.RBD, Force: c.ForceUnmap}
	case ISCSILogin:
		return ISCSILogout{ISCSI: c.ISCSI, Link: c.Link}
	case LoopAttach:
		return LoopDetach{Link: c.Link}
	case VerityOpen:
		return VerityClose{Name: c.Name}
	}
	return nil
}

// Argv returns the helper's full command line for c.
func Argv(c Command) []string {
	a := []string{layout.HelperPath, c.verb()}
	switch c := c.(type) {
	case RBDMap:
		a = opt(a, "attachment", c.Attachment)
		a = append(a, c.RBD.args()...)
		a = opt(a, "monitors", strings.Join(c.Monitors, ","))
		a = opt(a, "user", c.User)
		a = opt(a, "options", strings.Join(c.Options, ","))
		a = append(a, c.Secret.args()...)
		a = flagOpt(a, "force-unmap", c.ForceUnmap)
	case RBDUnmap:
		a = append(a, c.RBD.args()...)
		a = flagOpt(a, "force", c.Force)
	case ISCSILogin:
		a = opt(a, "attachment", c.Attachment)
		a = append(a, c.ISCSI.args()...)
		a = opt(a, "link", c.Link)
		a = opt(a, "initiator", c.Initiator)
		a = append(a, fmt.Sprintf("--max-commands=%d", c.MaxCommands), fmt.Sprintf("--queue-depth=%d", c.QueueDepth))
		a = opt(a, "scheduler", c.Scheduler)
		a = opt(a, "chap-user", c.CHAPUser)
		a = append(a, c.CHAPSecret.args()...)
	case ISCSILogout:
		a = append(a, c.ISCSI.args()...)
		a = opt(a, "link", c.Link)
	case LoopAttach:
		a = opt(a, "attachment", c.Attachment)
		a = opt(a, "file", c.File)
		a = flagOpt(a, "read-only", c.ReadOnly)
		a = flagOpt(a, "partscan", c.Partscan)
		a = opt(a, "link", c.Link)
	case LoopDetach:
		a = opt(a, "link", c.Link)
	case LocalWait:
		a = opt(a, "device", c.Device)
	case VerityOpen:
		a = opt(a, "attachment", c.Attachment)
		a = opt(a, "name", c.Name)
		a = opt(a, "device", c.Device)
		a = opt(a, "root-hash", c.RootHash)
		a = flagOpt(a, "signed", c.Signed)
	case VerityClose:
		a = opt(a, "name", c.Name)
	case OverlayPrepare:
		a = opt(a, "dir", c.Dir)
	case Fail:
		a = append(append(a, "--"), c.Messages...)
	case Release:
		a = opt(a, "attachment", c.Attachment)
	case GC:
		a = opt(a, "container", c.Container)
		a = flagOpt(a, "dry-run", c.DryRun)
		a = flagOpt(a, "json", c.JSON)
	case Started:
		a = opt(a, "container", c.Container)
		a = opt(a, "generation", c.Generation)
	case CDI:
		a = opt(a, "container", c.Container)
		a = opt(a, "devices", strings.Join(c.Devices, ","))
		a = opt(a, "env-file", c.EnvFile)
	case Health:
		a = opt(a, "container", c.Container)
		if c.Reset {
			return flagOpt(a, "reset", true)
		}
		a = append(a, fmt.Sprintf("--retries=%d", c.Retries))
		a = opt(a, "on-failure", c.OnFailure)
		a = opt(a, "timeout", c.Timeout)
		a = opt(a, "gate", c.Gate)
		a = append(append(a, "--"), c.Command...)
	}
	return a
}

func opt(a []string, name, value string) []string {
	if value == "" {
		return a
	}
	return append(a, "--"+name+"="+value)
}

func flagOpt(a []string, name string, on bool) []string {
	if !on {
		return a
	}
	return append(a, "--"+name)
}

// Parse reads a helper command line (without the program name): the verb,
// then its options.
func Parse(args []string) (Command, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("missing verb: one of %s", strings.Join(verbs(), ", "))
	}
	verb, rest := args[0], args[1:]
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c Command
	var finish func() error
	var operands []string // read by finish, once parsed
	switch verb {
	case VerbRBDMap:
		m := &RBDMap{}
		var mons, opts string
		fs.StringVar(&m.Attachment, "attachment", "", "attachment ID")
		fs.BoolVar(&m.ForceUnmap, "force-unmap", false, "release with a forced unmap")
		m.RBD.flags(fs)
		fs.StringVar(&mons, "monitors", "", "monitors")
		fs.StringVar(&m.User, "user", layout.DefaultCephUser, "cephx id")
		fs.StringVar(&opts, "options", "", "map options")
		m.Secret.flags(fs)
		finish = func() error {
			m.Monitors, m.Options = split(mons), split(opts)
			c = *m
			return require(verb, map[string]string{"pool": m.Pool, "image": m.Image, "monitors": mons})
		}
	case VerbRBDUnmap:
		u := &RBDUnmap{}
		u.RBD.flags(fs)
		fs.BoolVar(&u.Force, "force", false, "force")
		finish = func() error { c = *u; return require(verb, map[string]string{"pool": u.Pool, "image": u.Image}) }
	case VerbISCSILogin:
		l := &ISCSILogin{}
		fs.StringVar(&l.Attachment, "attachment", "", "attachment ID")
		l.ISCSI.flags(fs)
		fs.StringVar(&l.Link, "link", "", "symlink to the LUN's device")
		fs.StringVar(&l.Initiator, "initiator", "", "initiator IQN")
		fs.IntVar(&l.MaxCommands, "max-commands", layout.DefaultISCSIMaxCommands, "session max commands")
		fs.IntVar(&l.QueueDepth, "queue-depth", layout.DefaultISCSIQueueDepth, "LUN queue depth")
		fs.StringVar(&l.Scheduler, "scheduler", layout.DefaultISCSIScheduler, "I/O scheduler")
		fs.StringVar(&l.CHAPUser, "chap-user", "", "CHAP user")
		l.CHAPSecret.flags(fs)
		finish = func() error {
			c = *l
			return require(verb, map[string]string{"host": l.Host, "target": l.Target, "initiator": l.Initiator, "link": l.Link})
		}
	case VerbISCSILogout:
		l := &ISCSILogout{}
		l.ISCSI.flags(fs)
		fs.StringVar(&l.Link, "link", "", "symlink to the LUN's device")
		finish = func() error {
			c = *l
			return require(verb, map[string]string{"host": l.Host, "target": l.Target, "link": l.Link})
		}
	case VerbLoopAttach:
		l := &LoopAttach{}
		fs.StringVar(&l.Attachment, "attachment", "", "attachment ID")
		fs.StringVar(&l.File, "file", "", "image file")
		fs.BoolVar(&l.ReadOnly, "read-only", false, "attach read-only")
		fs.BoolVar(&l.Partscan, "partscan", false, "scan partitions")
		fs.StringVar(&l.Link, "link", "", "symlink to the device")
		finish = func() error { c = *l; return require(verb, map[string]string{"file": l.File, "link": l.Link}) }
	case VerbLoopDetach:
		l := &LoopDetach{}
		fs.StringVar(&l.Link, "link", "", "symlink to the device")
		finish = func() error { c = *l; return require(verb, map[string]string{"link": l.Link}) }
	case VerbLocalWait:
		l := &LocalWait{}
		fs.StringVar(&l.Device, "device", "", "block device")
		finish = func() error { c = *l; return require(verb, map[string]string{"device": l.Device}) }
	case VerbVerityOpen:
		o := &VerityOpen{}
		fs.StringVar(&o.Attachment, "attachment", "", "attachment ID")
		fs.StringVar(&o.Name, "name", "", "device-mapper name")
		fs.StringVar(&o.Device, "device", "", "the attached image")
		fs.StringVar(&o.RootHash, "root-hash", "", "root hash (hex)")
		fs.BoolVar(&o.Signed, "signed", false, "check the image's root hash signature")
		finish = func() error {
			c = *o
			need := map[string]string{"name": o.Name, "device": o.Device}
			if !o.Signed {
				need["root-hash"] = o.RootHash
			}
			return require(verb, need)
		}
	case VerbVerityClose:
		v := &VerityClose{}
		fs.StringVar(&v.Name, "name", "", "device-mapper name")
		finish = func() error { c = *v; return require(verb, map[string]string{"name": v.Name}) }
	case VerbOverlayPrepare:
		o := &OverlayPrepare{}
		fs.StringVar(&o.Dir, "dir", "", "directory holding upper and work")
		finish = func() error { c = *o; return require(verb, map[string]string{"dir": o.Dir}) }
	case VerbRelease:
		r := &Release{}
		fs.StringVar(&r.Attachment, "attachment", "", "attachment ID")
		finish = func() error { c = *r; return require(verb, map[string]string{"attachment": r.Attachment}) }
	case VerbGC:
		g := &GC{}
		fs.StringVar(&g.Container, "container", "", "a container known to be stopped")
		fs.BoolVar(&g.DryRun, "dry-run", false, "only say what would be released")
		fs.BoolVar(&g.JSON, "json", false, "print the actions as JSON")
		finish = func() error { c = *g; return nil }
	case VerbStarted:
		st := &Started{}
		fs.StringVar(&st.Container, "container", "", "container name")
		fs.StringVar(&st.Generation, "generation", "", "generation of its units")
		finish = func() error {
			c = *st
			return require(verb, map[string]string{"container": st.Container, "generation": st.Generation})
		}
	case VerbCDI:
		d := &CDI{}
		var devs string
		fs.StringVar(&d.Container, "container", "", "container name")
		fs.StringVar(&devs, "devices", "", "CDI device names, comma-separated")
		fs.StringVar(&d.EnvFile, "env-file", "", "where to write the nspawn options")
		finish = func() error {
			d.Devices = split(devs)
			c = *d
			return require(verb, map[string]string{"container": d.Container, "devices": devs, "env-file": d.EnvFile})
		}
	case VerbHealth:
		h := &Health{}
		fs.StringVar(&h.Container, "container", "", "container name")
		fs.IntVar(&h.Retries, "retries", 3, "failures in a row that make it unhealthy")
		fs.StringVar(&h.OnFailure, "on-failure", "none", "restart, stop or none")
		fs.StringVar(&h.Timeout, "timeout", "30s", "limit of one check")
		fs.StringVar(&h.Gate, "gate", "", "retry until a check passes, for this long")
		fs.BoolVar(&h.Reset, "reset", false, "forget past results")
		finish = func() error {
			if len(operands) > 0 {
				h.Command = operands
			}
			c = *h
			if !h.Reset && len(h.Command) == 0 {
				return fmt.Errorf("%s: missing the command after --", verb)
			}
			return require(verb, map[string]string{"container": h.Container})
		}
	case VerbFail:
		f := &Fail{}
		finish = func() error { f.Messages = operands; c = *f; return nil }
	default:
		return nil, fmt.Errorf("unknown verb %q: one of %s", verb, strings.Join(verbs(), ", "))
	}
	var err error
	if operands, err = ParseFlags(fs, rest); err != nil {
		return nil, fmt.Errorf("%s: %v", verb, err)
	}
	if verb != VerbFail && verb != VerbHealth && len(operands) > 0 {
		return nil, fmt.Errorf("%s: unexpected argument %q", verb, operands[0])
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return c, nil
}

func verbs() []string {
	return []string{VerbRBDMap, VerbRBDUnmap, VerbISCSILogin, VerbISCSILogout, VerbLoopAttach, VerbLoopDetach, VerbLocalWait, VerbVerityOpen, VerbVerityClose, VerbOverlayPrepare, VerbFail, VerbRelease, VerbGC, VerbStarted, VerbHealth, VerbCDI}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func require(verb string, values map[string]string) error {
	var missing []string
	for _, k := range []string{"pool", "image", "monitors", "host", "target", "initiator", "file", "link", "name", "device", "root-hash", "dir", "attachment", "container", "generation", "devices", "env-file"} {
		if v, ok := values[k]; ok && v == "" {
			missing = append(missing, "--"+k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: missing %s", verb, strings.Join(missing, ", "))
	}
	return nil
}
