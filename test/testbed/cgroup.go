package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/strata-project/strata/internal/mountinfo"
	"github.com/strata-project/strata/test/harness"
)

const (
	cgroup2SuperMagic = 0x63677270
	cgroupSuperMagic  = 0x27e0eb

	// cgroupParent is the directory, in every cgroup hierarchy the harness uses,
	// under which each testbed gets its own cgroup (cgroupParent/NAME).
	cgroupParent = "testbed"
)

// cgroupHierarchy is one cgroup hierarchy the harness puts nspawn into.
type cgroupHierarchy struct {
	Mount   string // e.g. /sys/fs/cgroup/unified
	Unified bool   // cgroup2
}

// cgroupHierarchies returns the hierarchies the harness must use: / on a pure cgroup2
// host; the named systemd hierarchy and the cgroup2 one on a hybrid host (the layout of
// these machines); the named systemd hierarchy alone on a legacy host.
func cgroupHierarchies() ([]cgroupHierarchy, error) {
	if isFSType("/sys/fs/cgroup", cgroup2SuperMagic) {
		return []cgroupHierarchy{{Mount: "/sys/fs/cgroup", Unified: true}}, nil
	}
	var hs []cgroupHierarchy
	if isFSType("/sys/fs/cgroup/systemd", cgroupSuperMagic) {
		hs = append(hs, cgroupHierarchy{Mount: "/sys/fs/cgroup/systemd"})
	}
	if isFSType("/sys/fs/cgroup/unified", cgroup2SuperMagic) {
		hs = append(hs, cgroupHierarchy{Mount: "/sys/fs/cgroup/unified", Unified: true})
	}
	if len(hs) == 0 {
		return nil, errors.New("no usable cgroup hierarchy: need cgroup2 at /sys/fs/cgroup, or name=systemd at /sys/fs/cgroup/systemd (plus cgroup2 at /sys/fs/cgroup/unified)")
	}
	return hs, nil
}

func isFSType(path string, magic int64) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return false
	}
	return int64(st.Type) == magic
}

// allCgroupMounts lists every mounted cgroup hierarchy (v1 controllers included), for
// the leak check.
func allCgroupMounts() []string {
	ms, _ := mountinfo.Read(mountinfo.Path)
	var out []string
	for _, m := range ms {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			out = append(out, m.Point)
		}
	}
	return out
}

// cgroupTree returns dir and all cgroups below it, deepest first.
func cgroupTree(dir string) []string {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool {
		return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/")
	})
	return dirs
}

// cgroupPIDs returns the PIDs in dir and every cgroup below it.
func cgroupPIDs(dir string) []int {
	var pids []int
	for _, d := range cgroupTree(dir) {
		data, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// killCgroup SIGKILLs everything in dir (recursively) until it is empty or the timeout
// expires. It uses cgroup.kill where the kernel has it (cgroup2, Linux 5.14+), which also
// catches processes forking while being killed. It returns the PIDs still there.
func killCgroup(dir string, timeout time.Duration) []int {
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	var pids []int
	_ = harness.Poll(timeout, 20*time.Millisecond, func() bool {
		if pids = cgroupPIDs(dir); len(pids) == 0 {
			return true
		}
		_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return false
	})
	return pids
}

// removeCgroup removes dir and every cgroup below it (deepest first). A cgroup can only
// be removed once it has no processes, so callers kill first. rmdir on a cgroup that
// just became empty may fail with EBUSY for a moment: it retries until the timeout.
func removeCgroup(dir string, timeout time.Duration) error {
	var lastErr error
	_ = harness.Poll(timeout, 20*time.Millisecond, func() bool {
		lastErr = nil
		for _, d := range cgroupTree(dir) {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				lastErr = fmt.Errorf("rmdir %s: %w", d, err)
			}
		}
		return lastErr == nil
	})
	return lastErr
}

// removeIfEmptyParent removes the shared parent (e.g. /sys/fs/cgroup/unified/testbed)
// when no testbed is left in it. Another testbed creating its cgroup at the same time
// makes rmdir fail with EBUSY/ENOTEMPTY, which is fine.
func removeIfEmptyParent(dir string) {
	_ = syscall.Rmdir(dir)
}

// procsInCgroupNamed scans /proc for processes whose cgroup path (in any hierarchy)
// lies inside testbed/NAME: the leak check for processes.
func procsInCgroupNamed(name string) []string {
	needle := "/" + cgroupParent + "/" + name
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 {
				continue
			}
			if parts[2] == needle || strings.HasPrefix(parts[2], needle+"/") {
				out = append(out, fmt.Sprintf("pid %d (%s) in %s", pid, procComm(pid), line))
				break
			}
		}
	}
	return out
}
