// Package harness holds what the nspawn testbed (test/testbed) and the QEMU VM
// (test/vm) both need around the processes they start: a long-running child that
// dies with the test process and whose output goes to a log file, the last lines
// of such a log for failure messages, and waiting for a condition with a deadline
// instead of sleeping. It uses only the standard library.
package harness

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Daemon is a long-lived child process (nspawn, qemu, a Ceph daemon, a network
// namespace's holder) in its own process group that dies with the test process:
// PR_SET_PDEATHSIG, set from a goroutine locked to its OS thread until the child
// has exited (the signal fires when the forking *thread* exits).
type Daemon struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done is closed
}

// Start starts cmd as a Daemon that gets deathSig when the test process dies.
// With a non-empty logPath, its stdout and stderr are appended to that file
// (closed when it exits).
func Start(cmd *exec.Cmd, deathSig syscall.Signal, logPath string) (*Daemon, error) {
	var log *os.File
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		log = f
		cmd.Stdout, cmd.Stderr = f, f
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true // a ^C to `go test` reaches the test, not the daemon
	cmd.SysProcAttr.Pdeathsig = deathSig
	d := &Daemon{Cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(d.done)
		if log != nil {
			defer log.Close()
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		d.err = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return d, nil
}

// PID is the daemon's process ID (and its process group's).
func (d *Daemon) PID() int { return d.Cmd.Process.Pid }

// Done is closed when the daemon has exited.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Err is what Wait returned; valid once Done is closed.
func (d *Daemon) Err() error {
	<-d.done
	return d.err
}

// Exited reports whether the daemon has exited.
func (d *Daemon) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Stop sends sig, waits up to grace, then SIGKILLs the process group and waits
// (up to 10 s: a process in uninterruptible sleep may take a moment).
func (d *Daemon) Stop(sig syscall.Signal, grace time.Duration) {
	if d.Exited() {
		return
	}
	_ = d.Cmd.Process.Signal(sig)
	select {
	case <-d.done:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-d.PID(), syscall.SIGKILL)
	_ = d.Cmd.Process.Kill()
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
	}
}

// ErrTimeout is what Until returns when the deadline passed first.
var ErrTimeout = fmt.Errorf("condition not met in time")

// Until calls cond every interval until it returns true (nil), the timeout
// passes (ErrTimeout; 0: only ctx bounds the wait), ctx ends (its error) or
// abort is closed (abortErr(), e.g. "qemu exited"); abort may be nil. cond is
// always called at least once, and once more at the end, so a slow machine does
// not fail a condition that became true while it slept.
func Until(ctx context.Context, timeout, interval time.Duration, abort <-chan struct{}, abortErr func() error, cond func() bool) error {
	var expired <-chan time.Time
	if timeout > 0 {
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
		expired = deadline.C
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-abort:
			if cond() {
				return nil
			}
			return abortErr()
		case <-ctx.Done():
			return ctx.Err()
		case <-expired:
			if cond() {
				return nil
			}
			return ErrTimeout
		case <-tick.C:
		}
	}
}

// Poll is Until without a context or an abort channel.
func Poll(timeout, interval time.Duration, cond func() bool) error {
	return Until(context.Background(), timeout, interval, nil, nil, cond)
}

// FileExists reports whether p exists (following links).
func FileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// Tail returns the last n lines of a log file, without terminal escapes (a
// console's colours), or why it could not be read.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, ansiRE.ReplaceAllString(sc.Text(), ""))
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
