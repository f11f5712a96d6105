//go:build linux

// Command agent runs inside the Strata test VM as a systemd service and runs
// the commands the host harness (package vm) sends over the virtio-serial port
// proto.PortName, one JSON request per line, answering each with its output
// and exit code. It is built static (CGO_ENABLED=0) by the harness and reaches
// the VM through a read-only 9p share.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/strata-project/strata/test/vm/internal/proto"
)

var defaultEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"LANG=C.UTF-8",
	"TERM=dumb",
	"SYSTEMD_PAGER=cat",
	"SYSTEMD_COLORS=0",
}

type agent struct {
	port    *os.File
	wmu     sync.Mutex
	mu      sync.Mutex
	running map[uint64]*exec.Cmd
	bootID  string
}

func main() {
	path := findPort()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "agent: %v\n", err)
		os.Exit(1)
	}
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	a := &agent{port: f, running: map[uint64]*exec.Cmd{}, bootID: strings.TrimSpace(string(b))}
	fmt.Fprintf(os.Stderr, "agent: serving on %s\n", path)
	a.serve()
}

// findPort waits for the virtio-serial port named proto.PortName.
func findPort() string {
	for i := 0; ; i++ {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err == nil && strings.TrimSpace(string(b)) == proto.PortName {
				dev := "/dev/" + filepath.Base(filepath.Dir(n))
				if _, err := os.Stat(dev); err == nil {
					return dev
				}
			}
		}
		if i%100 == 0 {
			fmt.Fprintf(os.Stderr, "agent: waiting for the virtio port %s\n", proto.PortName)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serve reads request lines. A read of 0 bytes means that no host is connected
// (virtio_console returns EOF then): wait and read again.
func (a *agent) serve() {
	buf := make([]byte, 1<<16)
	var pending []byte
	for {
		n, err := a.port.Read(buf)
		if n > 0 {
			pending = append(pending, buf[:n]...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				line := pending[:i]
				pending = append([]byte(nil), pending[i+1:]...)
				a.handle(line)
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintf(os.Stderr, "agent: read: %v\n", err)
		}
		pending = pending[:0]
		time.Sleep(50 * time.Millisecond)
	}
}

func (a *agent) send(r proto.Response) {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(proto.Response{ID: r.ID, ExitCode: -1, Error: err.Error()})
	}
	b = append(b, '\n')
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if _, err := a.port.Write(b); err != nil {
		fmt.Fprintf(os.Stderr, "agent: write: %v\n", err)
	}
}

func (a *agent) handle(line []byte) {
	var req proto.Request
	if err := json.Unmarshal(line, &req); err != nil {
		fmt.Fprintf(os.Stderr, "agent: bad request (%v): %.200q\n", err, line)
		return
	}
	switch req.Op {
	case proto.OpPing:
		a.send(proto.Response{ID: req.ID, Pong: a.bootID})
	case proto.OpExec:
		go a.exec(req)
	case proto.OpCancel:
		a.mu.Lock()
		cmd := a.running[req.Target]
		a.mu.Unlock()
		if cmd != nil && cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	default:
		a.send(proto.Response{ID: req.ID, ExitCode: -1, Error: "unknown op " + req.Op})
	}
}

func (a *agent) exec(req proto.Request) {
	if len(req.Args) == 0 {
		a.send(proto.Response{ID: req.ID, ExitCode: -1, Error: "no command"})
		return
	}
	cmd := exec.Command(req.Args[0], req.Args[1:]...)
	cmd.Env = append(append([]string(nil), defaultEnv...), req.Env...)
	cmd.Dir = req.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	cmd.Stdin = bytes.NewReader(req.Stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// A daemon the command left behind may hold its output open: do not wait for it.
	cmd.WaitDelay = 2 * time.Second
	t0 := time.Now()
	a.mu.Lock()
	err := cmd.Start()
	if err == nil {
		a.running[req.ID] = cmd
	}
	a.mu.Unlock()
	if err != nil {
		a.send(proto.Response{ID: req.ID, ExitCode: -1, Error: err.Error()})
		return
	}
	err = cmd.Wait()
	d := time.Since(t0)
	a.mu.Lock()
	delete(a.running, req.ID)
	a.mu.Unlock()
	code := 0
	if err != nil {
		code = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		} else if errors.Is(err, exec.ErrWaitDelay) {
			code = cmd.ProcessState.ExitCode()
		}
	}
	a.send(proto.Response{ID: req.ID, Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: code, DurationNS: d.Nanoseconds()})
}
