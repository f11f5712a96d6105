//go:build linux

package iscsi

import (
	"errors"
	"fmt"
	"strings"
)

// Validate checks what ends up in iscsiadm arguments and database paths,
// for a login (initiator, queue settings too) or a logout. The generator
// applies it too, so validate refuses what the helper would.
func (t Target) Validate(login bool) error {
	if t.Host == "" {
		return errors.New("no portal host")
	}
	if t.Port < 0 || t.Port > 65535 {
		return fmt.Errorf("port %d is out of range", t.Port)
	}
	if t.LUN < 0 || t.LUN > 1<<32-1 {
		return fmt.Errorf("LUN %d is out of range", t.LUN)
	}
	if err := checkName("target name", t.Target); err != nil {
		return err
	}
	if !login {
		return nil
	}
	if err := checkName("initiator name", t.Initiator); err != nil {
		return err
	}
	if t.MaxCommands < 0 || t.QueueDepth < 0 {
		return errors.New("max commands and queue depth cannot be negative")
	}
	for _, r := range t.Scheduler {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("scheduler %q is not a scheduler name", t.Scheduler)
		}
	}
	return nil
}

// checkName accepts iSCSI names (iqn., eui., naa.) as far as they are safe
// in a path component and an argument.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("no %s", what)
	}
	if len(s) > 223 { // RFC 7143 4.2.7.1
		return fmt.Errorf("%s %q is longer than 223 bytes", what, s)
	}
	if s == "." || s == ".." || strings.ContainsAny(s, "/\\") {
		return fmt.Errorf("%s %q is not an iSCSI name", what, s)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%s %q holds a space or control character", what, s)
		}
	}
	return nil
}

// maxSecret is the longest password open-iscsi stores: its auth strings are
// AUTH_STR_MAX_LEN (256) bytes with the terminating NUL, and the record
// parser copies a value into a 256-byte buffer without a bound.
const maxSecret = 255

// checkCHAP checks the CHAP user and password fit a node record line. It
// never quotes the password.
func checkCHAP(user, password string) error {
	switch {
	case user == "" && password == "":
		return nil
	case user == "":
		return errors.New("a CHAP password is given but no CHAP user")
	case password == "":
		return fmt.Errorf("CHAP user %q has no password", user)
	}
	if err := recordValue(user); err != nil {
		return fmt.Errorf("CHAP user %q: %v", user, err)
	}
	if err := recordValue(password); err != nil {
		return fmt.Errorf("the CHAP password (%d bytes): %v", len(password), err)
	}
	return nil
}

// recordValue checks a value survives open-iscsi's record format: one line,
// surrounding white space stripped, at most 255 bytes.
func recordValue(s string) error {
	if len(s) > maxSecret {
		return fmt.Errorf("longer than open-iscsi's %d bytes", maxSecret)
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return errors.New("holds a control character (a line break, tab or NUL), which open-iscsi's node records cannot hold")
		}
	}
	if strings.TrimSpace(s) != s {
		return errors.New("starts or ends with white space, which open-iscsi's node records drop")
	}
	return nil
}
