package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Path returns the host path of a path inside the running container
// (/proc/LEADER/root/...). Valid until the next Reboot or Close. Beware: an absolute
// symbolic link met on the way resolves against the host's root, not the container's
// (e.g. /etc/systemd/system/default.target): to write files, use WriteFile, which
// writes from inside the container.
func (tb *Testbed) Path(guest string) string {
	return fmt.Sprintf("/proc/%d/root%s", tb.Leader(), filepath.Clean("/"+guest))
}

// WriteFile writes a file inside the running container (creating parent directories),
// from inside it, so that symbolic links resolve as the container sees them.
func (tb *Testbed) WriteFile(guest string, data []byte, perm os.FileMode) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := tb.Exec(ctx, Command{
		Args: []string{"/bin/sh", "-c", `mkdir -p -- "$(dirname -- "$1")" && cat >"$1" && chmod "$2" "$1"`,
			"sh", filepath.Clean("/" + guest), fmt.Sprintf("%04o", perm.Perm())},
		Stdin: bytes.NewReader(data),
	})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("testbed %s: writing %s: %s", tb.name, guest, strings.TrimSpace(res.Stderr))
	}
	return nil
}

// ReadFile reads a file inside the running container (from inside it).
func (tb *Testbed) ReadFile(guest string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := tb.Exec(ctx, Command{Args: []string{"cat", "--", filepath.Clean("/" + guest)}})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("testbed %s: reading %s: %s", tb.name, guest, strings.TrimSpace(res.Stderr))
	}
	return []byte(res.Stdout), nil
}

// Run runs args inside the testbed. A non-zero exit is not an error: see ExitCode.
func (tb *Testbed) Run(ctx context.Context, args ...string) (*Result, error) {
	return tb.Exec(ctx, Command{Args: args})
}

// MustRun runs args inside the testbed (2 minute timeout) and fails t (the calling
// test or subtest) unless the command exits 0. It returns stdout with surrounding white
// space trimmed.
func (tb *Testbed) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := tb.Run(ctx, args...)
	if err != nil {
		t.Fatalf("testbed %s: %q: %v", tb.name, args, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("testbed %s: %q: %s", tb.name, args, res)
	}
	return strings.TrimSpace(res.Stdout)
}

// Exec runs a command inside the testbed with `nsenter -t LEADER -a -r -w`: in all the
// container's namespaces, with its root and working directory. On a cgroup2 host
// hierarchy the process is started in the testbed's own cgroup (testbed/NAME/exec), so
// Close kills whatever it left running. A non-zero exit is not an error; a cancelled ctx
// kills the command's process group and returns ctx's error with the partial result.
func (tb *Testbed) Exec(ctx context.Context, c Command) (*Result, error) {
	if len(c.Args) == 0 {
		return nil, errors.New("testbed: Exec: no command")
	}
	tb.mu.Lock()
	if !tb.running || tb.leader == 0 {
		tb.mu.Unlock()
		return nil, fmt.Errorf("testbed %s: not running", tb.name)
	}
	leader := tb.leader
	var cgfd int = -1
	if tb.execCG != nil && !tb.noCGFD {
		cgfd = int(tb.execCG.Fd())
	}
	tb.mu.Unlock()

	args := []string{"-t", strconv.Itoa(leader), "-a", "-r", "-w", "--"}
	if c.Dir != "" {
		args = append(args, "/bin/sh", "-c", `cd -- "$0" && exec "$@"`, c.Dir)
	}
	args = append(args, c.Args...)
	var stdout, stderr bytes.Buffer
	start := time.Now()
	exited := make(chan struct{})
	defer close(exited)
	run := func(useCG bool) (*exec.Cmd, error) {
		cmd := exec.CommandContext(ctx, "nsenter", args...)
		cmd.Env = append([]string{
			"PATH=" + guestPath, "HOME=/root", "LANG=C.UTF-8", "TERM=dumb",
			"SYSTEMD_PAGER=cat", "PAGER=cat", "SYSTEMD_COLORS=0",
		}, c.Env...)
		cmd.Stdin = c.Stdin
		cmd.Stdout = teeWriter(&stdout, c.Stdout)
		cmd.Stderr = teeWriter(&stderr, c.Stderr)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if useCG {
			cmd.SysProcAttr.UseCgroupFD = true
			cmd.SysProcAttr.CgroupFD = cgfd
		}
		cmd.Cancel = func() error {
			// Kill the command, not nsenter: nsenter forks to enter the PID namespace,
			// and if it died first its child would be re-parented to the host's init,
			// outside the container. A zombie the container's PID 1 cannot reap makes
			// systemd-shutdown wait its full 10 s timeout at the next shutdown.
			go killGroupButLeader(cmd.Process.Pid, exited)
			return nil
		}
		// If the command is still there after this, os/exec kills nsenter itself.
		cmd.WaitDelay = 10 * time.Second
		return cmd, cmd.Start()
	}
	cmd, err := run(cgfd >= 0)
	if err != nil && cgfd >= 0 && ctx.Err() == nil {
		// No clone3 into a cgroup (old kernel, seccomp): run it in the caller's cgroup.
		tb.mu.Lock()
		tb.noCGFD = true
		tb.mu.Unlock()
		tb.t.Logf("testbed %s: starting in the exec cgroup failed (%v); running without", tb.name, err)
		cmd, err = run(false)
	}
	if err != nil {
		return nil, fmt.Errorf("testbed %s: %q: %w", tb.name, c.Args, err)
	}
	werr := cmd.Wait()
	res := &Result{Stdout: stdout.String(), Stderr: stderr.String(), Duration: time.Since(start)}
	if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		switch {
		case st.Exited():
			res.ExitCode = st.ExitStatus()
		case st.Signaled():
			res.ExitCode = 128 + int(st.Signal())
		}
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("testbed %s: %q: %w", tb.name, c.Args, ctx.Err())
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return res, fmt.Errorf("testbed %s: %q: %w", tb.name, c.Args, werr)
	}
	return res, nil
}

// killGroupButLeader SIGKILLs every process in process group pgid except its leader
// (nsenter), every 50 ms until exited is closed: nsenter then reaps its child and exits.
func killGroupButLeader(pgid int, exited <-chan struct{}) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, pid := range processGroup(pgid) {
			if pid != pgid {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		select {
		case <-exited:
			return
		case <-tick.C:
		}
	}
}

func teeWriter(buf *bytes.Buffer, w io.Writer) io.Writer {
	if w == nil {
		return buf
	}
	return io.MultiWriter(buf, w)
}
