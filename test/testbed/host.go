package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/strata-project/strata/internal/mountinfo"
)

// readMounts returns the host's mount table by mount ID; what could be read counts
// (the leak check compares two of them, it does not fail on its own).
func readMounts() map[int]mountinfo.Mount {
	out := map[int]mountinfo.Mount{}
	ms, _ := mountinfo.Read(mountinfo.Path)
	for _, m := range ms {
		out[m.ID] = m
	}
	return out
}

// hostSnapshot is the host state taken before a testbed boots, compared after Close.
type hostSnapshot struct {
	mounts      map[int]mountinfo.Mount
	loops       loopState
	nspawnRun   bool // /run/systemd/nspawn existed
	cgroupDirs  map[string]bool
	cgroupMount []string
}

func takeHostSnapshot() hostSnapshot {
	s := hostSnapshot{
		mounts:      readMounts(),
		loops:       snapshotLoops(),
		cgroupDirs:  map[string]bool{},
		cgroupMount: allCgroupMounts(),
	}
	_, err := os.Stat("/run/systemd/nspawn")
	s.nspawnRun = err == nil
	for _, m := range s.cgroupMount {
		for _, d := range topCgroupDirs(m) {
			s.cgroupDirs[d] = true
		}
	}
	return s
}

// topCgroupDirs lists the cgroups directly below a hierarchy's root and below its
// testbed/ directory: where nspawn would leave payload/ and supervisor/ if it were not
// moved into its own cgroup first, and where the harness puts its own.
func topCgroupDirs(mount string) []string {
	var out []string
	for _, dir := range []string{mount, filepath.Join(mount, cgroupParent)} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	return out
}

// leaks compares the host with the snapshot and returns what the testbed left behind.
// Only changes that can be attributed to this testbed count (other testbeds may run in
// parallel): mounts that mention its root, work directory or name, nspawn's run
// directory, or carry the source names the harness mounts with; loop devices of the container that could not be detached; cgroups
// named after it (and payload/supervisor at a hierarchy's root); processes in its cgroups.
func (tb *Testbed) leaks(before hostSnapshot) []string {
	var out []string
	needles := []string{tb.name}
	if tb.root != "" {
		needles = append(needles, tb.root)
	}
	if tb.workDir != "" {
		needles = append(needles, tb.workDir)
	}
	for id, m := range readMounts() {
		if _, ok := before.mounts[id]; ok {
			continue
		}
		hit := strings.Contains(m.Point, "/run/systemd/nspawn") ||
			m.Source == "strata-testbed-run" || m.Source == "strata-testbed-root"
		for _, n := range needles {
			if strings.Contains(m.Point, n) || strings.Contains(m.Source, n) {
				hit = true
			}
		}
		if hit {
			out = append(out, fmt.Sprintf("mount left behind: %s", m.Line))
		}
	}
	if _, err := os.Stat("/run/systemd/nspawn"); err == nil && !before.nspawnRun {
		out = append(out, "/run/systemd/nspawn was created on the host")
	}
	tb.mu.Lock()
	detached := tb.detached
	tb.mu.Unlock()
	for _, lf := range detached {
		if lf.stillAttached() {
			out = append(out, fmt.Sprintf("loop device /dev/loop%d still attached to %s", lf.Index, lf.Backing))
		}
	}
	for _, m := range allCgroupMounts() {
		for _, d := range topCgroupDirs(m) {
			base := filepath.Base(d)
			if base == tb.name {
				out = append(out, fmt.Sprintf("cgroup left behind: %s", d))
			} else if !before.cgroupDirs[d] && (base == "payload" || base == "supervisor") {
				out = append(out, fmt.Sprintf("cgroup left behind (nspawn outside its own cgroup?): %s", d))
			}
		}
	}
	for _, p := range procsInCgroupNamed(tb.name) {
		out = append(out, "process left behind: "+p)
	}
	return out
}

func procComm(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(data))
}

// procPPid returns the parent PID of pid from /proc/PID/stat.
func procPPid(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad stat for %d", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("bad stat for %d", pid)
	}
	return strconv.Atoi(f[1])
}

// processGroup returns the PIDs whose process group is pgid.
func processGroup(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// procNSPidIsOne reports whether pid is PID 1 in its innermost PID namespace.
func procNSPidIsOne(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "NSpid:") {
			f := strings.Fields(line)
			return len(f) >= 3 && f[len(f)-1] == "1"
		}
	}
	return false
}

// childrenOf returns the PIDs whose parent is ppid.
func childrenOf(ppid int) []int {
	// Fast path: /proc/PID/task/PID/children (CONFIG_PROC_CHILDREN).
	// It lists only the children of that one thread, so fall back to a scan when empty.
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", ppid, ppid)); err == nil {
		var out []int
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, err := procPPid(pid); err == nil && pp == ppid {
			out = append(out, pid)
		}
	}
	return out
}
