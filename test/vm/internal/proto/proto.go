// Package proto is the wire format between the VM test harness (package vm, on
// the host) and its agent (test/vm/agent, inside the VM): one JSON object per
// line over a virtio-serial port named PortName. Requests carry an ID; the
// agent answers each with a Response of the same ID, in any order.
package proto

// PortName is the name of the virtio-serial port (virtserialport name=...):
// the agent finds /dev/vportNpM through /sys/class/virtio-ports/*/name.
const PortName = "strata.agent"

// Operations.
const (
	OpPing   = "ping"   // answered at once: Response.Pong
	OpExec   = "exec"   // run Args; answered when it has exited
	OpCancel = "cancel" // kill the process group of the exec with ID Target
)

// Request is one line from the host.
type Request struct {
	ID     uint64   `json:"id"`
	Op     string   `json:"op"`
	Args   []string `json:"args,omitempty"`
	Env    []string `json:"env,omitempty"` // added to the agent's default environment
	Dir    string   `json:"dir,omitempty"`
	Stdin  []byte   `json:"stdin,omitempty"`
	Target uint64   `json:"target,omitempty"`
}

// Response is one line from the agent.
type Response struct {
	ID       uint64 `json:"id"`
	Stdout   []byte `json:"stdout,omitempty"`
	Stderr   []byte `json:"stderr,omitempty"`
	ExitCode int    `json:"exit"`            // 128+N when killed by signal N
	Error    string `json:"error,omitempty"` // the command could not be started
	Pong     string `json:"pong,omitempty"`  // ping: the guest's boot ID
	// DurationNS is how long the command ran, measured inside the guest.
	DurationNS int64 `json:"duration_ns,omitempty"`
}
