//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// leftoverNode reads a node for test/leftover: commands run inside the
// testbed, like the tests' own.
type leftoverNode struct{ n *node }

func (l leftoverNode) Output(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := l.n.Run(ctx, args...)
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return res.Stdout, fmt.Errorf("%q: exit status %d: %s", args, res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	return res.Stdout, nil
}

func (l leftoverNode) ReadFile(path string) ([]byte, error) { return l.n.ReadFile(path) }
