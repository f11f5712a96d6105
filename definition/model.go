// Package definition holds Strata's container definition model: the
// imageapi v0.2 vocabulary plus Strata's extensions, strictly decoded from
// JSON, TOML or YAML into one canonical form, and checked for meaning.
//
// Field names are the `json` tags; the binder (bind.go) reads the same tags
// for every format. A `strata` tag marks fields that need care: "output" is
// a field imageapi's API only reported (accepted, ignored), "ref" is
// imageapi's {"id": N} reference (cannot exist in a file), "secret" is a
// value that must never be rendered, logged or quoted in an error.
package definition

// Container is one container: a root file system assembled from mounts, and
// the command that runs in it under systemd-nspawn.
type Container struct {
	// Name is the machine name. It must equal the file's base name, which
	// is what units, masking and the CLI use.
	Name       string   `json:"name"`
	Command    string   `json:"command"`
	Mount      *Mount   `json:"mount"`
	Systemd    bool     `json:"systemd"`
	State      string   `json:"state"`
	Namespaces []string `json:"namespaces"` // imageapi accepted and ignored it; so does Strata

	ID      *int64 `json:"id" strata:"output"`
	Logfile string `json:"logfile" strata:"output"`
	Refs    *int64 `json:"refs" strata:"output"`

	// Strata extensions.
	Environment map[string]string `json:"environment"`
	Binds       []Bind            `json:"binds"`
	NspawnArgs  []string          `json:"nspawn_args"`
	Unit        map[string]Values `json:"unit"`    // extra [Unit] settings of the container service
	Service     map[string]Values `json:"service"` // extra [Service] settings (resource limits, ...)
	Devices     []Device          `json:"devices"`
	CDI         []string          `json:"cdi"` // Container Device Interface names, resolved at each start
	Health      *Health           `json:"health"`
}

// Device passes one host device node into the container: the cgroup lets
// the container use it (DeviceAllow=) and a bind makes it exist in the
// container's own /dev.
type Device struct {
	Path        string `json:"path"`
	Permissions string `json:"permissions"` // DeviceAllow='s r, w, m; default DefaultDevicePermissions
}

// DefaultDevicePermissions are DeviceAllow='s own default.
const DefaultDevicePermissions = "rwm"

// On-failure actions of a health check.
const (
	HealthRestart = "restart"
	HealthStop    = "stop"
	HealthNone    = "none"
)

// Health is a command run inside the running container on a timer; after
// Retries failures in a row, OnFailure acts on the container unit.
type Health struct {
	Command     string `json:"command"`
	Interval    string `json:"interval"`     // systemd time span; default DefaultHealthInterval
	StartPeriod string `json:"start_period"` // first check this long after start; default 0
	Timeout     string `json:"timeout"`      // one check's limit; default DefaultHealthTimeout
	Retries     int64  `json:"retries"`      // default DefaultHealthRetries
	OnFailure   string `json:"on_failure"`   // restart, stop or none (default)
	GateReady   bool   `json:"gate_ready"`   // the start waits for a healthy check
}

// Defaults of a health check.
const (
	DefaultHealthInterval = "30s"
	DefaultHealthTimeout  = "30s"
	DefaultHealthRetries  = 3
)

// Values is a list of setting values; a single scalar is a list of one.
type Values []string

// Bind brings a host directory into the container (systemd-nspawn --bind).
type Bind struct {
	Source string `json:"source"`
	Target string `json:"target"` // defaults to Source
	RO     bool   `json:"ro"`
}

// Mount kinds.
const (
	MountAttach  = "attach"
	MountBind    = "bind"
	MountNFS     = "nfs"
	MountOverlay = "overlay"
	MountURI     = "uri"
)

// Mount is a file system; Kind selects which one of the objects is used.
type Mount struct {
	Kind    string        `json:"kind"`
	Attach  *AttachMount  `json:"attach"`
	Bind    *BindMount    `json:"bind"`
	NFS     *NFSMount     `json:"nfs"`
	Overlay *OverlayMount `json:"overlay"`
	URI     *URIMount     `json:"uri"`

	Ref        *int64 `json:"id" strata:"ref"`
	Mountpoint string `json:"mountpoint" strata:"output"`
	Refs       *int64 `json:"refs" strata:"output"`
}

// AttachMount mounts the block device that an attachment provides.
type AttachMount struct {
	Kind         string   `json:"kind"` // imageapi v0.1 leftover; must match Attach.Kind when set
	Attach       *Attach  `json:"attach"`
	FSType       string   `json:"fs_type"`
	MountOptions []string `json:"mount_options"`
	// Verity (a Strata extension) checks every block read from the
	// device with dm-verity before the file system sees it.
	Verity *Verity `json:"verity"`
}

// Verity says which hash tree the attached device must match: the image
// holds the tree and a trailer (strata image build --verity); the root
// hash pinned here, or the one the image's signature vouches for (Signed),
// is what the kernel checks the tree against.
type Verity struct {
	RootHash string `json:"root_hash"` // sha256, 64 hex digits, as strata image build prints it
	// Signed takes the root hash from the image's trailer once its
	// signature (build --sign-key) checks out against the node's trust
	// store; with RootHash too, both must hold.
	Signed bool `json:"signed"`
}

// BindMount mounts a directory of the host (base "root") or of another
// mount of the same definition (base "mount").
type BindMount struct {
	Path      string `json:"path"`
	Base      string `json:"base"`
	Mount     *Mount `json:"mount"`
	Recursive bool   `json:"recursive"`
	RO        bool   `json:"ro"`
}

// NFSMount mounts an NFS export.
type NFSMount struct {
	Host    string   `json:"host"`
	Path    string   `json:"path"`
	RO      bool     `json:"ro"`
	Version string   `json:"version"`
	Options []string `json:"options"`
}

// OverlayMount stacks read-only lower mounts under a writable upper layer.
// Lower[0] is the top layer.
type OverlayMount struct {
	Lower []*Mount `json:"lower"`
	Upper *Upper   `json:"upper"` // Strata extension; tmpfs by default

	Upperdir string `json:"upperdir" strata:"output"`
	Workdir  string `json:"workdir" strata:"output"`
}

// Upper layer kinds.
const (
	UpperTmpfs     = "tmpfs"
	UpperDirectory = "directory"
)

// Upper chooses where the overlay's writable layer lives.
type Upper struct {
	Kind string `json:"kind"` // tmpfs (default) or directory
	Size string `json:"size"` // tmpfs size cap (tmpfs size= syntax); default node.DefaultUpperSize
	Path string `json:"path"` // directory: persistent, survives restarts
}

// URIMount was imageapi's "download into a ramdisk", never implemented.
type URIMount struct {
	URI string `json:"uri"`
}

// Attach kinds.
const (
	AttachRBD      = "rbd"
	AttachISCSI    = "iscsi"
	AttachLoopback = "loopback"
	AttachLocal    = "local"
)

// Attach makes a block device available; Kind selects the object.
type Attach struct {
	Kind     string    `json:"kind"`
	RBD      *RBD      `json:"rbd"`
	ISCSI    *ISCSI    `json:"iscsi"`
	Loopback *Loopback `json:"loopback"`
	Local    *Local    `json:"local"`

	ID         *int64 `json:"id" strata:"ref"`
	DeviceFile string `json:"device_file" strata:"output"`
	Refs       *int64 `json:"refs" strata:"output"`
}

// RBD maps a Ceph RBD image through the kernel.
type RBD struct {
	Monitors  []string    `json:"monitors"`
	Pool      string      `json:"pool"`
	Namespace string      `json:"namespace"`
	Image     string      `json:"image"`
	Snapshot  string      `json:"snapshot"`
	Options   *RBDOptions `json:"options"`

	DeviceID *int64 `json:"device_id" strata:"output"`
}

// RBDOptions are imageapi's rbd_options: the cephx identity and secret, and
// the kernel's map options, all of which are passed to the kernel.
type RBDOptions struct {
	Name   string `json:"name"`                   // cephx user id (default "admin")
	Secret string `json:"secret" strata:"secret"` // cephx key, base64; read at run time, never rendered

	// Strata extensions: where else the key can come from.
	Keyring    string `json:"keyring"`    // a Ceph keyring file
	Credential string `json:"credential"` // a systemd credential file (LoadCredential=)

	Namespace string `json:"namespace"` // imageapi v0.1 placement; same as RBD.Namespace

	RO                       *bool  `json:"ro"`
	RW                       *bool  `json:"rw"`
	Fsid                     string `json:"fsid"`
	IP                       string `json:"ip"`
	Share                    *bool  `json:"share"`
	Noshare                  *bool  `json:"noshare"`
	CRC                      *bool  `json:"crc"`
	NoCRC                    *bool  `json:"nocrc"`
	CephxRequireSignatures   *bool  `json:"cephx_require_signatures"`
	NoCephxRequireSignatures *bool  `json:"nocephx_require_signatures"`
	CephRequiresSignatures   *bool  `json:"ceph_requires_signatures"`   // imageapi's misspelling
	NoCephRequiresSignatures *bool  `json:"noceph_requires_signatures"` // imageapi's misspelling
	TCPNodelay               *bool  `json:"tcp_nodelay"`
	NoTCPNodelay             *bool  `json:"notcp_nodelay"`
	CephxSignMessages        *bool  `json:"cephx_sign_messages"`
	NoCephxSignMessages      *bool  `json:"nocephx_sign_messages"`

	MountTimeout    *int64 `json:"mount_timeout"`
	OSDKeepalive    *int64 `json:"osdkeepalive"`
	OSDIdleTTL      *int64 `json:"osd_idle_ttl"`
	QueueDepth      *int64 `json:"queue_depth"`
	LockOnRead      *bool  `json:"lock_on_read"`
	Exclusive       *bool  `json:"exclusive"`
	LockTimeout     *int64 `json:"lock_timeout"`
	Notrim          *bool  `json:"notrim"`
	AbortOnFull     *bool  `json:"abort_on_full"`
	AllocSize       *int64 `json:"alloc_size"`
	ReadFromReplica string `json:"read_from_replica"`
	CompressionHint string `json:"compression_hint"`
	MsMode          string `json:"ms_mode"`
	Rxbounce        *bool  `json:"rxbounce"`
	CrushLocation   string `json:"crush_location"`
	Force           *bool  `json:"force"` // unmap option
}

// ISCSI logs in to an iSCSI target and uses one of its LUNs.
type ISCSI struct {
	Initiator   string `json:"initiator"`
	Target      string `json:"target"`
	Host        string `json:"host"`
	Port        int64  `json:"port"`
	LUN         int64  `json:"lun"`
	MaxCommands int64  `json:"max_comands"` // sic: imageapi's spelling
	QueueDepth  int64  `json:"queue_depth"`
	Scheduler   string `json:"scheduler"`

	// Strata extension: CHAP credentials, read at run time.
	CHAP *CHAP `json:"chap"`
}

// CHAP names the CHAP user and where its password is read at run time.
type CHAP struct {
	Username   string `json:"username"`
	Password   string `json:"password" strata:"secret"` // inline, like rbd's secret
	Credential string `json:"credential"`               // a systemd credential file
}

// Loopback attaches a file through a loop device.
type Loopback struct {
	Path           string `json:"path"`
	Base           string `json:"base"`
	Mount          *Mount `json:"mount"`
	ReadPartitions bool   `json:"readPartitions"`
	// RO is a Strata extension. Unset, the loop device is read-only when
	// its mount is: an overlay layer, "ro" in mount_options, or a
	// read-only file system type (squashfs, erofs, iso9660).
	RO *bool `json:"ro"`
}

// Local uses a block device that already exists on the node.
type Local struct {
	Path string `json:"path"`
}

// Container states a definition may ask for.
const (
	StateRunning = "running" // started at boot
	StateCreated = "created" // defined, started on demand (imageapi's default)
	StateStopped = "stopped" // defined, started on demand
)

// Bases for bind and loopback paths.
const (
	BaseRoot  = "root"
	BaseMount = "mount"
)
