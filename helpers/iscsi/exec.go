//go:build linux

package iscsi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// ExecRunner runs the iscsiadm found on $PATH, or in /usr/sbin or /sbin
// (units run with a PATH that has them, but a bare environment may not).
// Stdin is /dev/null; the environment is the helper's own, which holds no
// secret (credentials are files, not variables).
func ExecRunner(ctx context.Context, args []string) (Result, error) {
	path, err := exec.LookPath("iscsiadm")
	if err != nil {
		for _, p := range []string{"/usr/sbin/iscsiadm", "/sbin/iscsiadm"} {
			if _, serr := os.Stat(p); serr == nil {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return Result{}, fmt.Errorf("iscsiadm not found: install open-iscsi: %w", err)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Exit = ee.ExitCode() // -1 when killed by a signal (ctx)
	default:
		return r, err
	}
	return r, nil
}

func isBlockDevice(path string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false, err
	}
	return st.Mode&unix.S_IFMT == unix.S_IFBLK, nil
}
