//go:build linux

package iscsi

import (
	"fmt"
	"strings"
)

// iscsiadm's exit codes (iscsiadm(8), EXIT STATUS; include/iscsi_err.h).
const (
	exitGeneric          = 1
	exitSessNotFound     = 2
	exitNoMem            = 3
	exitTrans            = 4
	exitLogin            = 5
	exitIDBM             = 6
	exitInval            = 7
	exitTransTimeout     = 8
	exitInternal         = 9
	exitLogout           = 10
	exitPDUTimeout       = 11
	exitTransNotFound    = 12
	exitAccess           = 13
	exitTransCaps        = 14
	exitSessExists       = 15
	exitInvalidMgmtReq   = 16
	exitISNSUnavailable  = 17
	exitISCSIDCommErr    = 18
	exitFatalLogin       = 19
	exitISCSIDNotConn    = 20
	exitNoObjsFound      = 21
	exitSysfsLookup      = 22
	exitHostNotFound     = 23
	exitLoginAuthFailed  = 24
	exitISNSQuery        = 25
	exitISNSRegFailed    = 26
	exitOpNotSupp        = 27
	exitBusy             = 28
	exitAgain            = 29
	exitUnknownDiscovery = 30
	exitChildTerminated  = 31
)

// exitNames are the symbolic names of the exit codes.
var exitNames = map[int]string{
	exitGeneric:          "ISCSI_ERR",
	exitSessNotFound:     "ISCSI_ERR_SESS_NOT_FOUND",
	exitNoMem:            "ISCSI_ERR_NOMEM",
	exitTrans:            "ISCSI_ERR_TRANS",
	exitLogin:            "ISCSI_ERR_LOGIN",
	exitIDBM:             "ISCSI_ERR_IDBM",
	exitInval:            "ISCSI_ERR_INVAL",
	exitTransTimeout:     "ISCSI_ERR_TRANS_TIMEOUT",
	exitInternal:         "ISCSI_ERR_INTERNAL",
	exitLogout:           "ISCSI_ERR_LOGOUT",
	exitPDUTimeout:       "ISCSI_ERR_PDU_TIMEOUT",
	exitTransNotFound:    "ISCSI_ERR_TRANS_NOT_FOUND",
	exitAccess:           "ISCSI_ERR_ACCESS",
	exitTransCaps:        "ISCSI_ERR_TRANS_CAPS",
	exitSessExists:       "ISCSI_ERR_SESS_EXISTS",
	exitInvalidMgmtReq:   "ISCSI_ERR_INVALID_MGMT_REQ",
	exitISNSUnavailable:  "ISCSI_ERR_ISNS_UNAVAILABLE",
	exitISCSIDCommErr:    "ISCSI_ERR_ISCSID_COMM_ERR",
	exitFatalLogin:       "ISCSI_ERR_FATAL_LOGIN",
	exitISCSIDNotConn:    "ISCSI_ERR_ISCSID_NOTCONN",
	exitNoObjsFound:      "ISCSI_ERR_NO_OBJS_FOUND",
	exitSysfsLookup:      "ISCSI_ERR_SYSFS_LOOKUP",
	exitHostNotFound:     "ISCSI_ERR_HOST_NOT_FOUND",
	exitLoginAuthFailed:  "ISCSI_ERR_LOGIN_AUTH_FAILED",
	exitISNSQuery:        "ISCSI_ERR_ISNS_QUERY",
	exitISNSRegFailed:    "ISCSI_ERR_ISNS_REG_FAILED",
	exitOpNotSupp:        "ISCSI_ERR_OP_NOT_SUPP",
	exitBusy:             "ISCSI_ERR_BUSY",
	exitAgain:            "ISCSI_ERR_AGAIN",
	exitUnknownDiscovery: "ISCSI_ERR_UNKNOWN_DISCOVERY_TYPE",
	exitChildTerminated:  "ISCSI_ERR_CHILD_TERMINATED",
}

// Error is a failed login or logout. Its text says what failed and what to
// check; it never holds the CHAP password.
type Error struct {
	Op     string // "login" or "logout"
	Target string // the LUN, as Target.String
	Step   string // "discovery", "login", "device", ... ("" before any)
	Exit   int    // iscsiadm's exit status, 0 when iscsiadm did not fail
	Msg    string
	Output string // iscsiadm's own error lines
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("iscsi " + e.Op)
	if e.Target != "" {
		b.WriteString(" " + e.Target)
	}
	b.WriteString(": ")
	if e.Step != "" {
		b.WriteString(e.Step + ": ")
	}
	b.WriteString(e.Msg)
	if e.Exit != 0 {
		fmt.Fprintf(&b, " (iscsiadm exit %d %s", e.Exit, exitNames[e.Exit])
		if e.Output != "" {
			b.WriteString(": " + e.Output)
		}
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ExitCode is iscsiadm's exit status behind err, or 0.
func ExitCode(err error) int {
	if e, ok := err.(*Error); ok {
		return e.Exit
	}
	return 0
}

// exitError decodes a failed iscsiadm run of step. chap says whether the
// login used CHAP (an authentication failure without it means the target
// wants CHAP).
func exitError(step string, r Result, t Target, chap bool) *Error {
	return &Error{Step: step, Exit: r.Exit, Msg: decodeExit(step, r.Exit, t, chap), Output: lastLines(r.Stderr)}
}

func decodeExit(step string, code int, t Target, chap bool) string {
	ini := t.Initiator
	if ini == "" {
		ini = "this node's initiator"
	}
	switch code {
	case -1:
		return "iscsiadm was stopped (time-out or signal)"
	case exitTrans:
		return "cannot connect to the portal: check the target is up and listening on that address and port, and the network and firewalls between (TCP " + fmt.Sprint(t.port()) + ")"
	case exitTransTimeout:
		return "connecting to the portal timed out: check the portal address and port, the route to it, firewalls (TCP " + fmt.Sprint(t.port()) + ") and that the target is listening"
	case exitPDUTimeout:
		return "the target stopped answering (iSCSI PDU time-out): check the target's health and the network"
	case exitLoginAuthFailed:
		if !chap {
			return "the target requires authentication: give the definition CHAP credentials (chap.username with a password or credential)"
		}
		if step == "discovery" {
			return "the target requires authentication for discovery (discovery CHAP), which Strata does not configure: allow discovery without authentication on the target"
		}
		return "CHAP authentication failed: check the CHAP user and password, and that the target's ACL for " + ini + " uses them"
	case exitLogin:
		return "the target refused the login: check that its ACL admits " + ini + " and that it serves this target name"
	case exitFatalLogin:
		return "the target rejected the login for good: check the target name " + t.Target + ", that its ACL admits " + ini + ", and that it exports LUN " + fmt.Sprint(t.LUN)
	case exitTransNotFound:
		return "the kernel's iSCSI TCP transport is missing: load it (modprobe iscsi_tcp; the kernel needs CONFIG_ISCSI_TCP)"
	case exitISCSIDNotConn:
		return "cannot reach iscsid: start it (systemctl start iscsid.socket iscsid.service; package open-iscsi)"
	case exitISCSIDCommErr:
		return "talking to iscsid failed: check iscsid (systemctl status iscsid, journalctl -u iscsid)"
	case exitIDBM:
		return "iscsiadm cannot read or write its database (/etc/iscsi: ifaces, nodes, send_targets): check it exists, is writable by root and is not full"
	case exitAccess:
		return "permission denied: strata-helper must run as root"
	case exitNoObjsFound:
		switch step {
		case "discovery":
			return "the portal offered no targets: check the target's ACL admits " + ini + " (targets hide themselves from others)"
		case "node settings", "login":
			return "open-iscsi has no node record for the target at this portal after discovery: the target may advertise itself at another address; use that one"
		}
		return "no matching open-iscsi records or sessions"
	case exitInval:
		return "iscsiadm rejected an argument or setting: check the target and initiator names, and iscsiadm's message"
	case exitHostNotFound:
		return "iscsiadm cannot find the iSCSI host (is the iface's transport loaded?)"
	case exitBusy:
		return "the session or device is busy"
	case exitAgain:
		return "iscsid asks to try again later"
	case exitLogout:
		return "the logout failed: the target may be unreachable; the session stays (iscsiadm -m session shows it)"
	case exitInternal:
		return "iscsid or the kernel failed internally: see journalctl -u iscsid and the kernel log"
	case exitNoMem:
		return "iscsid ran out of memory"
	case exitTransCaps:
		return "the iface's transport cannot do this"
	case exitSessNotFound:
		return "no such session"
	}
	return "iscsiadm failed"
}

// lastLines keeps iscsiadm's own error lines ("iscsiadm: ..."), at most
// three, or the last line of output when it printed none.
func lastLines(out string) string {
	var keep, all []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		all = append(all, l)
		if strings.HasPrefix(l, "iscsiadm:") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 && len(all) > 0 {
		keep = all[len(all)-1:]
	}
	if len(keep) > 3 {
		keep = keep[len(keep)-3:]
	}
	s := strings.Join(keep, "; ")
	if len(s) > 600 {
		s = s[:600] + "..."
	}
	return s
}

// redactor removes a secret from text, belt and braces: nothing in this
// package puts the password in a message.
type redactor struct{ secret string }

func newRedactor(secret string) redactor { return redactor{secret: secret} }

func (r redactor) apply(s string) string {
	if r.secret == "" {
		return s
	}
	return strings.ReplaceAll(s, r.secret, "[redacted]")
}

// finish makes err an *Error for op on t, with all text redacted.
func finish(err error, op string, t Target, r redactor) error {
	e, ok := err.(*Error)
	if !ok {
		e = &Error{Msg: err.Error()}
	}
	e.Op = op
	if e.Target == "" {
		e.Target = t.String()
	}
	e.Msg = r.apply(e.Msg)
	e.Output = r.apply(e.Output)
	if e.Err != nil && r.secret != "" && strings.Contains(e.Err.Error(), r.secret) {
		e.Err = fmt.Errorf("%s", r.apply(e.Err.Error()))
	}
	return e
}
