//go:build vm

package vm

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// leftoverNode reads the VM for test/leftover: commands run through its
// agent, like the tests' own.
type leftoverNode struct{ e *rbdEnv }

func (l leftoverNode) Output(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := l.e.vm.Run(ctx, args...)
	if err != nil {
		return "", err
	}
	if r.ExitCode != 0 {
		return r.Stdout, fmt.Errorf("%q: exit status %d: %s", args, r.ExitCode, strings.TrimSpace(r.Stderr))
	}
	return r.Stdout, nil
}

func (l leftoverNode) ReadFile(path string) ([]byte, error) { return l.e.vm.ReadFile(path) }
