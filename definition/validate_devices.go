package definition

import (
	"fmt"
	"strings"
	"unicode"
)

// devices checks the device nodes a definition passes in. Each path ends
// up in two places: DeviceAllow= (a unit setting that splits its value at
// white space) and systemd-nspawn --bind=SOURCE:TARGET (split at ':').
func (v *validator) devices(ds []Device) {
	seen := map[string]int{}
	for i := range ds {
		d := &ds[i]
		p := fmt.Sprintf("devices[%d]", i)
		if d.Path == "" {
			v.errorf(p+".path", "is required: the device node to pass in, e.g. /dev/fuse")
		} else if msg := DevicePathProblem(d.Path); msg != "" {
			v.errorf(p+".path", "%s", msg)
		} else if j, dup := seen[d.Path]; dup {
			v.errorf(p+".path", "%q is already passed in by devices[%d]: give each device once", d.Path, j)
		} else {
			seen[d.Path] = i
		}
		if d.Permissions == "" {
			d.Permissions = DefaultDevicePermissions
		} else if !validPermissions(d.Permissions) {
			v.errorf(p+".permissions", "%q is not a set of device permissions: use r (read), w (write) and m (mknod), each at most once, e.g. \"rw\"", d.Permissions)
		}
	}
}

// DevicePathProblem checks a device node's path: "" when it is a clean
// absolute path under /dev that DeviceAllow= and nspawn's --bind= can
// both carry, else what is wrong.
func DevicePathProblem(p string) string {
	if msg := PathProblem(p); msg != "" {
		return msg
	}
	switch {
	case !strings.HasPrefix(p, "/dev/") || len(p) == len("/dev/"):
		return fmt.Sprintf("path %q is not a device node under /dev: give its path there, e.g. /dev/fuse or /dev/disk/by-id/...", p)
	case strings.HasPrefix(p, "/dev/pts/") || strings.HasPrefix(p, "/dev/shm/") || strings.HasPrefix(p, "/dev/mqueue/"):
		return fmt.Sprintf("path %q is inside a file system systemd-nspawn gives every container its own of: pass a device node", p)
	case strings.Contains(p, ":"):
		return fmt.Sprintf("path %q contains ':', which systemd-nspawn --bind reads as the end of the source path: use another name of the device (e.g. under /dev/disk/by-id)", p)
	case strings.IndexFunc(p, unicode.IsSpace) >= 0:
		return fmt.Sprintf("path %q contains white space, which DeviceAllow= reads as the end of the path: use another name of the device", p)
	case strings.HasSuffix(p, "/"):
		return fmt.Sprintf("path %q ends with '/': give the device node, not a directory", p)
	}
	return ""
}

func validPermissions(s string) bool {
	for i, c := range s {
		if !strings.ContainsRune("rwm", c) || strings.ContainsRune(s[:i], c) {
			return false
		}
	}
	return true
}
