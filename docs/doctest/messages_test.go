package doctest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/helpers/iscsi"
	"github.com/strata-project/strata/helpers/krbd"
	"github.com/strata-project/strata/helpers/secret"
	"github.com/strata-project/strata/internal/layout"
)

// A scenario plays a failure of the attach unit of a definition and returns
// the line the helper logs for it (the journal's MESSAGE).
type scenario func(t *testing.T, r *rendered) string

var scenarios = map[string]scenario{
	// The kernel's answers to the map request (errno of the sysfs write),
	// through the real krbd mapper; the kernel log is left empty.
	"rbd-not-found":         rbdKernel(syscall.ENOENT),
	"rbd-permission-denied": rbdKernel(syscall.EACCES),
	"rbd-unreachable":       rbdKernel(syscall.ETIMEDOUT),
	// The keyring the definition names is not there.
	"rbd-keyring-missing": rbdKeyringMissing,
	// The target refuses the CHAP login.
	"iscsi-chap-failed": iscsiCHAPFailed,
	// The image file is not there (the real helper binary; needs root).
	"loop-file-missing": loopFileMissing,
	// The placeholder unit of a broken definition is started (the real
	// helper binary).
	"definition-errors": definitionErrors,
}

func scenarioNames() []string {
	var out []string
	for n := range scenarios {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// TestMessages compares every message block with what the scenario logs.
func TestMessages(t *testing.T) {
	for _, pg := range pages(t) {
		for _, b := range pg.blocks {
			if b.kind != "message" {
				continue
			}
			def, ok := pg.defs[b.name()]
			play, known := scenarios[b.args[0]]
			if !ok || !known {
				continue // TestPages says so
			}
			t.Run(b.page+"/"+b.args[0], func(t *testing.T) {
				got := play(t, renderOnce(t, def)) + "\n"
				if got != b.body {
					t.Errorf("%s: the helper logs\n%s--- the page quotes\n%s", b.where(), got, b.body)
				}
			})
		}
	}
}

// helperCommand finds the attach unit of r whose ExecStart runs verb and
// returns its name, the definition it names and the parsed command.
func helperCommand(t *testing.T, r *rendered, verb string) (unit, source string, cmd contract.Command) {
	t.Helper()
	for p, text := range r.files {
		if !strings.HasPrefix(p, "strata-attach@") {
			continue
		}
		argv := execStart(t, text)
		if len(argv) < 2 || argv[0] != layout.HelperPath || argv[1] != verb {
			continue
		}
		c, err := contract.Parse(argv[1:])
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		unit, _, _ := strings.Cut(p, ".d/") // a drop-in of the attach template
		return unit, sourcePath(text), c
	}
	t.Fatalf("%s renders no attach unit running %s", filepath.Base(r.path), verb)
	return
}

// execStart splits a unit's last ExecStart= line into words, undoing
// units.QuoteExec: "..." with \" \\ \t escapes, %% and $$.
func execStart(t *testing.T, unit string) []string {
	t.Helper()
	var line string
	sc := bufio.NewScanner(strings.NewReader(unit))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok && v != "" {
			line = v
		}
	}
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			if line[i] == 't' {
				w.WriteByte('\t')
			} else {
				w.WriteByte(line[i])
			}
		case quoted && c == '"':
			quoted = false
		case quoted:
			w.WriteByte(c)
		case c == '"':
			quoted, inWord = true, true
		case c == ' ':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("ExecStart=%s: unterminated quote", line)
	}
	if inWord {
		words = append(words, w.String())
	}
	for i, w := range words {
		words[i] = strings.NewReplacer("%%", "%", "$$", "$").Replace(w)
	}
	return words
}

func sourcePath(unit string) string {
	for _, l := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(l, "SourcePath="); ok {
			return v
		}
	}
	return ""
}

// helperLine is the helper's failure line (cmd/strata-helper/log.go
// failureText), checked against the real binary by loop-file-missing.
func helperLine(verb, layer, source, unit string, err error) string {
	return fmt.Sprintf("%s failed for %s (definition %s, unit %s): %v", verb, layer, source, unit, err)
}

// cephKey is a well-formed cephx key (CryptoKey, AES, 16 bytes).
func cephKey() string {
	b := make([]byte, 12+16)
	binary.LittleEndian.PutUint16(b[0:], 1)
	binary.LittleEndian.PutUint32(b[2:], 1700000000)
	binary.LittleEndian.PutUint16(b[10:], 16)
	copy(b[12:], "DocumentedKey!!!")
	return base64.StdEncoding.EncodeToString(b)
}

type keyring struct{}

func (keyring) Add(string, []byte) (int, error) { return 1, nil }
func (keyring) Remove(int) error                { return nil }

func rbdLayer(c contract.RBDMap) krbd.Spec {
	return krbd.Spec{Pool: c.Pool, Namespace: c.Namespace, Image: c.Image, Snapshot: c.Snapshot}
}

// rbdKernel makes the kernel answer the map request with errno.
func rbdKernel(errno syscall.Errno) scenario {
	return func(t *testing.T, r *rendered) string {
		unit, source, cmd := helperCommand(t, r, contract.VerbRBDMap)
		c := cmd.(contract.RBDMap)
		root := t.TempDir()
		sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev")
		bus := filepath.Join(sys, "bus", "rbd")
		for _, d := range []string{filepath.Join(bus, "devices"), dev, filepath.Join(root, "proc", "self")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []string{"add", "remove", "add_single_major", "remove_single_major"} {
			if err := os.WriteFile(filepath.Join(bus, f), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// The map's retries on a clock of their own: a write that times out
		// blocks for the kernel's default mount_timeout, every pause is its
		// longest; so the message says what a node would.
		clock := time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC)
		retry := krbd.DefaultRetry
		retry.Now = func() time.Time { return clock }
		retry.Sleep = func(_ context.Context, d time.Duration) error { clock = clock.Add(d); return nil }
		retry.Jitter = func(ceiling time.Duration) time.Duration { return ceiling }
		m := &krbd.Mapper{
			Keyring: keyring{},
			Write: func(path string, data []byte) error {
				if errno == syscall.ETIMEDOUT {
					clock = clock.Add(60 * time.Second)
				}
				return &fs.PathError{Op: "write", Path: path, Err: errno}
			},
			Retry: &retry,
			// Debian 12's kernel: the page quotes a node's line, which for a
			// snapshot carries the helper's read_from_replica default.
			KernelRelease: func() string { return "6.1.0-13-amd64" },
			Modprobe:      func(context.Context) error { return errors.New("no modprobe in this test") },
			KernelLog:     func() func() []string { return func() []string { return nil } },
			StatDevice:    func(string) (krbd.DevNode, error) { return krbd.DevNode{}, os.ErrNotExist },
			ProcRoot:      filepath.Join(root, "proc"),
		}
		spec := krbd.Spec{Monitors: c.Monitors, User: c.User, Pool: c.Pool, Namespace: c.Namespace, Image: c.Image, Snapshot: c.Snapshot, Options: c.Options}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := m.Map(ctx, sys, dev, spec, cephKey())
		if err == nil {
			t.Fatal("the map succeeded")
		}
		return helperLine(contract.VerbRBDMap, "rbd image "+rbdLayer(c).String(), source, unit, err)
	}
}

// rbdKeyringMissing reads the key where the unit says it is, as the helper
// does (cmd/strata-helper/rbd.go rbdKey), from a keyring that must not exist.
func rbdKeyringMissing(t *testing.T, r *rendered) string {
	unit, source, cmd := helperCommand(t, r, contract.VerbRBDMap)
	c := cmd.(contract.RBDMap)
	if c.Secret.Keyring == "" {
		t.Fatal("the definition names no keyring file")
	}
	if _, err := os.Stat(c.Secret.Keyring); err == nil {
		t.Fatalf("%s exists on this machine: the scenario needs it missing", c.Secret.Keyring)
	}
	_, err := secret.Read(c.Secret, c.User)
	if err == nil {
		t.Fatal("the key was read")
	}
	spec := krbd.Spec{Monitors: c.Monitors, User: c.User, Pool: c.Pool, Namespace: c.Namespace, Image: c.Image, Snapshot: c.Snapshot, Options: c.Options}
	return helperLine(contract.VerbRBDMap, "rbd image "+rbdLayer(c).String(), source, unit,
		fmt.Errorf("rbd %s: %w", spec, err))
}

// iscsiCHAPFailed runs the real iSCSI login against an iscsiadm that answers
// as open-iscsi 2.1.8 (Debian 12) does when the target refuses the CHAP
// user or password.
func iscsiCHAPFailed(t *testing.T, r *rendered) string {
	unit, source, cmd := helperCommand(t, r, contract.VerbISCSILogin)
	c := cmd.(contract.ISCSILogin)
	if c.CHAPUser == "" {
		t.Fatal("the definition has no CHAP user")
	}
	root := t.TempDir()
	config := filepath.Join(root, "etc", "iscsi")
	target := iscsi.Target{Host: c.Host, Port: c.Port, Target: c.Target, LUN: c.LUN, Initiator: c.Initiator,
		MaxCommands: c.MaxCommands, QueueDepth: c.QueueDepth, Scheduler: c.Scheduler, CHAPUser: c.CHAPUser}
	portal := fmt.Sprintf("%s:%d", c.Host, c.Port)
	iface := iscsi.IfaceName(c.Initiator)
	run := func(ctx context.Context, args []string) (iscsi.Result, error) {
		joined := strings.Join(args, " ")
		switch {
		case strings.HasPrefix(joined, "-m discovery"):
			rec := filepath.Join(config, "nodes", c.Target, fmt.Sprintf("%s,%d,1", c.Host, c.Port), iface)
			if err := os.MkdirAll(filepath.Dir(rec), 0o700); err != nil {
				return iscsi.Result{}, err
			}
			if err := os.WriteFile(rec, []byte("# BEGIN RECORD 2.1.8\nnode.name = "+c.Target+"\n# END RECORD\n"), 0o600); err != nil {
				return iscsi.Result{}, err
			}
			return iscsi.Result{Stdout: fmt.Sprintf("%s,1 %s\n", portal, c.Target)}, nil
		case strings.HasSuffix(joined, "--login"):
			where := fmt.Sprintf("[iface: %s, target: %s, portal: %s,%d]", iface, c.Target, c.Host, c.Port)
			return iscsi.Result{Exit: 24,
				Stdout: "Logging in to " + where + "\n",
				Stderr: "iscsiadm: Could not login to " + where + ".\n" +
					"iscsiadm: initiator reported error (24 - iSCSI login failed due to authorization failure)\n" +
					"iscsiadm: Could not log into all portals\n"}, nil
		}
		return iscsi.Result{}, nil // iface new/update, node update, delete
	}
	m := &iscsi.Manager{Run: run, SysfsRoot: filepath.Join(root, "sys"), DevRoot: filepath.Join(root, "dev"),
		ConfigRoot: config, LockDir: filepath.Join(root, "lock"), StateDir: filepath.Join(root, "state")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := m.Login(ctx, target, "a-chap-password")
	if err == nil {
		t.Fatal("the login succeeded")
	}
	return helperLine(contract.VerbISCSILogin, "iSCSI "+target.String(), source, unit, err)
}

var (
	helperOnce sync.Once
	helperBin  string
	helperErr  error
)

// helper builds the real strata-helper once.
func helper(t *testing.T) string {
	t.Helper()
	helperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-doctest-helper")
		if err != nil {
			helperErr = err
			return
		}
		tempDirs = append(tempDirs, dir)
		helperBin = filepath.Join(dir, "strata-helper")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", helperBin, "github.com/strata-project/strata/cmd/strata-helper")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return helperBin
}

// runHelper runs the real helper with argv (after the program name) as the
// unit runs it: its cgroup names the unit and the generator directory holds
// the unit's file (STRATA_HELPER_TEST_ROOT moves /proc/self/cgroup and
// /run/systemd/generator; loop devices stay the host's). It returns the
// lines the helper printed, without their "strata-helper: " prefix.
func runHelper(t *testing.T, unit, file, text string, argv []string) []string {
	t.Helper()
	root := t.TempDir()
	gen := filepath.Join(root, "run", "systemd", "generator")
	for _, d := range []string{filepath.Join(root, "proc", "self"), filepath.Dir(filepath.Join(gen, file))} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "proc", "self", "cgroup"), []byte("0::/system.slice/"+unit+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gen, file), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(helper(t), argv...)
	run.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "STRATA_HELPER_TEST_ROOT=" + root}
	var stderr bytes.Buffer
	run.Stderr = &stderr
	err := run.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("the helper: %v, want exit status 1\n%s", err, stderr.String())
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n") {
		line, ok := strings.CutPrefix(l, "strata-helper: ")
		if !ok {
			t.Fatalf("the helper printed %q, not a strata-helper: line", l)
		}
		lines = append(lines, line)
	}
	return lines
}

// loopFileMissing runs the attach unit's command line with a file that is
// not there.
func loopFileMissing(t *testing.T, r *rendered) string {
	unit, source, cmd := helperCommand(t, r, contract.VerbLoopAttach)
	c := cmd.(contract.LoopAttach)
	if os.Geteuid() != 0 {
		t.Skip("needs root: the helper opens /dev/loop-control before the image file")
	}
	if _, err := os.Stat(c.File); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists on this machine (%v): the scenario needs it missing", c.File, err)
	}
	lines := runHelper(t, unit, unit+".d/"+layout.DropInName, r.files[unit+".d/"+layout.DropInName], contract.Argv(c)[1:])
	if len(lines) != 1 {
		t.Fatalf("the helper printed %q, want one line", lines)
	}
	// The other scenarios rebuild this line with helperLine: check it holds.
	line := lines[0]
	verb, rest, _ := strings.Cut(line, " failed for ")
	if want := "loop file " + c.File + " (definition " + source + ", unit " + unit + "): "; verb != contract.VerbLoopAttach || !strings.HasPrefix(rest, want) {
		t.Errorf("the helper's failure line %q does not start as helperLine builds it (%s failed for %s)", line, contract.VerbLoopAttach, want)
	}
	return line
}

// definitionErrors starts the placeholder unit of a broken definition: the
// helper logs each problem, then its failure.
func definitionErrors(t *testing.T, r *rendered) string {
	if len(r.result.Failed) != 1 {
		t.Fatalf("%s is not a broken definition", filepath.Base(r.path))
	}
	unit := layout.ContainerUnit(r.result.Failed[0].Name)
	file := unit + ".d/" + layout.DropInName
	text, ok := r.files[file]
	if !ok {
		t.Fatalf("no placeholder %s", file)
	}
	argv := execStart(t, text)
	if len(argv) < 2 || argv[0] != layout.HelperPath || argv[1] != contract.VerbFail {
		t.Fatalf("the placeholder runs %q", argv)
	}
	return strings.Join(runHelper(t, unit, file, text, argv[1:]), "\n")
}
