package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// imageTool is the admin-side program behind `strata image`: it links
// Ceph's libraries (go-ceph, cgo), which nodes must not need, so it is a
// separate binary in a separate package, found beside strata or on PATH.
const imageTool = "strata-image"

func image(args []string, stderr io.Writer) int {
	path := imageToolPath()
	if path == "" && len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
		writeHelp(os.Stdout, newFlags("image"))
		fmt.Fprintf(os.Stdout, "\n%s is not installed: its own --help lists the image commands.\n", imageTool)
		return 0
	}
	if path == "" {
		fmt.Fprintf(stderr, "strata: image: %s is not installed: it is the admin-side package (strata-image) that builds images into Ceph RBD; install it on an admin host, not on nodes\n", imageTool)
		return 1
	}
	// Replace this process: exit status, signals and the terminal (for the
	// progress bar) are the tool's own.
	err := syscall.Exec(path, append([]string{imageTool}, args...), os.Environ())
	fmt.Fprintf(stderr, "strata: image: %v\n", err)
	return 1
}

func imageToolPath() string {
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), imageTool)
		if fi, err := os.Stat(beside); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return beside
		}
	}
	if p, err := exec.LookPath(imageTool); err == nil {
		return p
	}
	return ""
}
