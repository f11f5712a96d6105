package vm

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/strata-project/strata/test/harness"
	"github.com/strata-project/strata/test/vm/internal/proto"
)

// prepare writes the configuration share (agent, init.sh, files) and returns qemu's
// arguments.
func (v *VM) prepare(ctx context.Context, root string) ([]string, error) {
	conf := filepath.Join(v.workDir, "conf")
	if err := os.MkdirAll(filepath.Join(conf, "files"), 0o755); err != nil {
		return nil, err
	}
	if _, err := buildAgent(ctx, conf); err != nil {
		return nil, err
	}

	type share struct{ tag, host string }
	shares := []share{{"conf", conf}}
	tagOf := map[string]string{}
	var hook strings.Builder
	hook.WriteString(`# Written by the Strata VM harness (test/vm): sourced by the initramfs.
C=$NEWROOT/run/strata-vm/9p/conf
S=/etc/systemd/system
# The agent: commands from the host over the virtio-serial port strata.agent.
mkdir -p "$NEWROOT/usr/local/sbin"
cp "$C/agent" "$NEWROOT/usr/local/sbin/testvm-agent"
cat >"$NEWROOT$S/testvm-agent.service" <<'UNIT'
[Unit]
Description=Strata VM test agent (test/vm)
DefaultDependencies=no

[Service]
ExecStart=/usr/local/sbin/testvm-agent
Restart=always
RestartSec=200ms
UNIT
mkdir -p "$NEWROOT$S/sysinit.target.wants"
ln -sf ../testvm-agent.service "$NEWROOT$S/sysinit.target.wants/testvm-agent.service"
bind() {
	if [ -d "$1" ]; then mkdir -p "$NEWROOT$2"; else mkdir -p "$(dirname "$NEWROOT$2")"; [ -e "$NEWROOT$2" ] || : >"$NEWROOT$2"; fi
	mount --bind "$1" "$NEWROOT$2" || fail "bind $1 $2"
}
put() {
	mkdir -p "$(dirname "$NEWROOT$2")"
	rm -f "$NEWROOT$2"
	cp "$C/files/$1" "$NEWROOT$2" && chmod "$3" "$NEWROOT$2" || fail "file $2"
}
link() {
	mkdir -p "$(dirname "$NEWROOT$2")"
	rm -rf "$NEWROOT$2"
	ln -s "$1" "$NEWROOT$2" || fail "symlink $2"
}
`)
	for _, b := range v.opts.Binds {
		if !filepath.IsAbs(b.Host) || !filepath.IsAbs(b.Guest) {
			return nil, fmt.Errorf("bind %s:%s: paths must be absolute", b.Host, b.Guest)
		}
		st, err := os.Stat(b.Host)
		if err != nil {
			return nil, fmt.Errorf("bind: %w", err)
		}
		dir, base := b.Host, ""
		if !st.IsDir() {
			dir, base = filepath.Dir(b.Host), filepath.Base(b.Host)
		}
		tag, ok := tagOf[dir]
		if !ok {
			tag = fmt.Sprintf("s%d", len(tagOf))
			tagOf[dir] = tag
			shares = append(shares, share{tag, dir})
		}
		src := "$NEWROOT/run/strata-vm/9p/" + tag
		if base != "" {
			src += "/" + shellQuote(base)
		}
		fmt.Fprintf(&hook, "bind %s %s\n", src, shellQuote(b.Guest))
	}
	for i, f := range v.opts.Files {
		if !filepath.IsAbs(f.Path) {
			return nil, fmt.Errorf("file %s: path must be absolute", f.Path)
		}
		if f.Symlink != "" {
			fmt.Fprintf(&hook, "link %s %s\n", shellQuote(f.Symlink), shellQuote(f.Path))
			continue
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		name := fmt.Sprintf("f%d", i)
		if err := os.WriteFile(filepath.Join(conf, "files", name), f.Data, 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(&hook, "put %s %s %o\n", name, shellQuote(f.Path), mode)
	}
	if v.opts.Hook != "" {
		hook.WriteString(v.opts.Hook)
		hook.WriteString("\n")
	}
	hook.WriteString("true\n")
	if err := os.WriteFile(filepath.Join(conf, "init.sh"), []byte(hook.String()), 0o644); err != nil {
		return nil, err
	}

	var tags []string
	for _, s := range shares {
		tags = append(tags, s.tag)
	}
	cmdline := []string{"console=ttyS0", "panic=-1", "net.ifnames=0", "mitigations=off", "systemd.log_color=0",
		"strata.root=vda", "strata.modules=vdb", "strata.hook=conf", "strata.9p=" + strings.Join(tags, ",")}
	if n := v.opts.Netns; n != nil && !v.opts.NetworkByRoot {
		cmdline = append(cmdline, fmt.Sprintf("strata.ip=%s/%d", n.GuestAddr, n.PrefixLen))
	}
	if v.opts.Append != "" {
		cmdline = append(cmdline, v.opts.Append)
	}
	args := []string{
		"-name", v.name,
		"-accel", "tcg,thread=multi", "-cpu", "max",
		"-smp", fmt.Sprint(v.opts.CPUs), "-m", fmt.Sprint(v.opts.Memory),
		"-nographic", "-no-reboot", "-nodefaults", "-monitor", "none",
		"-serial", "file:" + v.console,
		"-kernel", filepath.Join(v.kernel, "vmlinuz"),
		"-initrd", filepath.Join(v.kernel, "initrd.img"),
		"-append", strings.Join(cmdline, " "),
		// vda: the root, vdb: the modules (PCI slots in this order).
		"-drive", "if=none,id=root,format=raw,readonly=on,file=" + root,
		"-device", "virtio-blk-pci,drive=root,serial=strata-root",
		"-drive", "if=none,id=modules,format=raw,readonly=on,file=" + filepath.Join(v.kernel, "modules.sqfs"),
		"-device", "virtio-blk-pci,drive=modules,serial=strata-modules",
		"-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=agent,path=" + filepath.Join(v.workDir, "agent.sock") + ",server=on,wait=off",
		"-device", "virtserialport,bus=vser0.0,chardev=agent,name=" + proto.PortName,
	}
	for _, s := range shares {
		args = append(args, "-virtfs", fmt.Sprintf("local,path=%s,mount_tag=%s,security_model=none,readonly=on", s.host, s.tag))
	}
	if n := v.opts.Netns; n != nil {
		args = append(args,
			"-netdev", "tap,id=net0,ifname="+n.Tap+",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:99:02")
	}
	return args, nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (v *VM) start(ctx context.Context, args []string) error {
	logf, err := os.Create(v.qemuLog)
	if err != nil {
		return err
	}
	var cmd *exec.Cmd
	if v.opts.Netns != nil {
		cmd = v.opts.Netns.Command(nil, append([]string{"qemu-system-x86_64"}, args...)...)
	} else {
		cmd = exec.Command("qemu-system-x86_64", args...)
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	fmt.Fprintf(logf, "# %s\n", strings.Join(cmd.Args, " "))
	t0 := time.Now()
	d, err := harness.Start(cmd, syscall.SIGKILL, "")
	logf.Close()
	if err != nil {
		return fmt.Errorf("starting qemu: %w", err)
	}
	v.qemu = d

	deadline := t0.Add(v.opts.BootTimeout)
	bctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	// Connect to the agent's socket (qemu is the server).
	sock := filepath.Join(v.workDir, "agent.sock")
	var dialErr, bootErr error
	connected := func() bool {
		if v.conn, dialErr = net.Dial("unix", sock); dialErr == nil {
			return true
		}
		bootErr = v.bootProblem()
		return bootErr != nil
	}
	if err := harness.Until(bctx, 0, 20*time.Millisecond, nil, nil, connected); err != nil || bootErr != nil {
		if bootErr != nil {
			return bootErr
		}
		return fmt.Errorf("qemu's agent socket did not appear within %s: %v", v.opts.BootTimeout, dialErr)
	}
	go v.readLoop()

	// Ping until the agent answers.
	for {
		id := v.nextID.Add(1)
		ch := v.register(id)
		if err := v.send(proto.Request{ID: id, Op: proto.OpPing}); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		var got *proto.Response
		select {
		case r := <-ch:
			got = &r
		case <-time.After(time.Second):
		case <-v.qemu.Done():
		case <-v.connDone:
		}
		v.unregister(id)
		if got != nil {
			v.bootID = got.Pong
			break
		}
		if err := v.bootProblem(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the agent did not answer within %s", v.opts.BootTimeout)
		}
	}
	v.timing.Agent = time.Since(t0)

	res, err := v.Exec(bctx, Command{Args: []string{"systemctl", "is-system-running", "--wait"}})
	if err != nil {
		return fmt.Errorf("waiting for systemd: %w", err)
	}
	state := strings.TrimSpace(res.Stdout)
	v.timing.Running = time.Since(t0)
	switch {
	case state == "running":
	case state == "degraded" && v.opts.AllowDegraded:
		v.t.Logf("vm %s: degraded boot:\n%s", v.name, v.failedUnits())
	default:
		return fmt.Errorf("systemd is %q, not running:\n%s", state, v.failedUnits())
	}
	v.t.Logf("vm %s: booted (agent after %s, running after %s; prepare %s)", v.name,
		v.timing.Agent.Round(time.Millisecond), v.timing.Running.Round(time.Millisecond), v.timing.Prepare.Round(time.Millisecond))
	return nil
}

// bootProblem says whether the boot has failed for good.
func (v *VM) bootProblem() error {
	if v.qemu.Exited() {
		return fmt.Errorf("qemu exited during boot (%v): %s", v.qemu.Err(), harness.Tail(v.qemuLog, 10))
	}
	b, _ := os.ReadFile(v.console)
	for _, marker := range []string{"STRATA-VM-INIT-FAILED", "Kernel panic", "end Kernel panic"} {
		if i := bytes.Index(b, []byte(marker)); i >= 0 {
			line := b[i:]
			if j := bytes.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			return fmt.Errorf("the guest failed to boot: %s", strings.TrimSpace(string(line)))
		}
	}
	return nil
}

func (v *VM) failedUnits() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b strings.Builder
	for _, a := range [][]string{
		{"systemctl", "--failed", "--no-legend", "--plain"},
		{"journalctl", "-b", "-p", "warning", "--no-pager", "-n", "40"},
	} {
		if r, err := v.Exec(ctx, Command{Args: a}); err == nil {
			fmt.Fprintf(&b, "$ %s\n%s%s", strings.Join(a, " "), r.Stdout, r.Stderr)
		}
	}
	return b.String()
}

func (v *VM) diagnose() string {
	return fmt.Sprintf("console log (%s), last lines:\n%s", v.console, harness.Tail(v.console, 60))
}
