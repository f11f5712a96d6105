package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/test/vm/internal/proto"
)

func (v *VM) register(id uint64) chan proto.Response {
	ch := make(chan proto.Response, 1)
	v.mu.Lock()
	v.pending[id] = ch
	v.mu.Unlock()
	return ch
}

func (v *VM) unregister(id uint64) {
	v.mu.Lock()
	delete(v.pending, id)
	v.mu.Unlock()
}

func (v *VM) send(req proto.Request) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	v.wmu.Lock()
	defer v.wmu.Unlock()
	_ = v.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err = v.conn.Write(b)
	return err
}

func (v *VM) readLoop() {
	defer close(v.connDone)
	r := bufio.NewReaderSize(v.conn, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			var resp proto.Response
			if jerr := json.Unmarshal(line, &resp); jerr == nil {
				v.mu.Lock()
				ch := v.pending[resp.ID]
				delete(v.pending, resp.ID)
				v.mu.Unlock()
				if ch != nil {
					ch <- resp
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// Exec runs a command inside the VM and waits for it. A non-zero exit is not an error;
// a canceled context kills the command (its session) inside and returns ctx.Err().
func (v *VM) Exec(ctx context.Context, c Command) (*Result, error) {
	if len(c.Args) == 0 {
		return nil, errors.New("vm: no command")
	}
	id := v.nextID.Add(1)
	ch := v.register(id)
	t0 := time.Now()
	if err := v.send(proto.Request{ID: id, Op: proto.OpExec, Args: c.Args, Env: c.Env, Dir: c.Dir, Stdin: c.Stdin}); err != nil {
		v.unregister(id)
		return nil, fmt.Errorf("vm %s: %q: %w", v.name, c.Args, err)
	}
	select {
	case r := <-ch:
		if r.Error != "" {
			return nil, fmt.Errorf("vm %s: %q: %s", v.name, c.Args, r.Error)
		}
		return &Result{Stdout: string(r.Stdout), Stderr: string(r.Stderr), ExitCode: r.ExitCode,
			Duration: time.Since(t0), InGuest: time.Duration(r.DurationNS)}, nil
	case <-ctx.Done():
		v.unregister(id)
		_ = v.send(proto.Request{ID: v.nextID.Add(1), Op: proto.OpCancel, Target: id})
		return nil, fmt.Errorf("vm %s: %q: %w", v.name, c.Args, ctx.Err())
	case <-v.qemu.Done():
		v.unregister(id)
		return nil, fmt.Errorf("vm %s: %q: qemu exited (%v)\n%s", v.name, c.Args, v.qemu.Err(), v.diagnose())
	case <-v.connDone:
		v.unregister(id)
		return nil, fmt.Errorf("vm %s: %q: the agent connection closed", v.name, c.Args)
	}
}

// Run runs args inside the VM.
func (v *VM) Run(ctx context.Context, args ...string) (*Result, error) {
	return v.Exec(ctx, Command{Args: args})
}

// MustRun runs args (bounded by 5 minutes), fails t unless they exit 0, and returns the
// trimmed stdout.
func (v *VM) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := v.Run(ctx, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if r.ExitCode != 0 {
		t.Fatalf("vm %s: %q: %s", v.name, args, r)
	}
	return strings.TrimSpace(r.Stdout)
}

// WriteFile writes a file inside the VM (creating its directory) with mode perm.
func (v *VM) WriteFile(guest string, data []byte, perm os.FileMode) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := v.Exec(ctx, Command{Args: []string{"sh", "-c",
		`set -e; mkdir -p "$(dirname "$1")"; umask 077; cat >"$1.strata-tmp"; chmod "$2" "$1.strata-tmp"; mv -f "$1.strata-tmp" "$1"`,
		"sh", guest, fmt.Sprintf("%o", perm)}, Stdin: data})
	if err != nil {
		return err
	}
	if r.ExitCode != 0 {
		return fmt.Errorf("vm %s: write %s: %s", v.name, guest, r)
	}
	return nil
}

// ReadFile reads a file inside the VM.
func (v *VM) ReadFile(guest string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := v.Exec(ctx, Command{Args: []string{"cat", "--", guest}})
	if err != nil {
		return nil, err
	}
	if r.ExitCode != 0 {
		return nil, fmt.Errorf("vm %s: read %s: %s", v.name, guest, strings.TrimSpace(r.Stderr))
	}
	return []byte(r.Stdout), nil
}
