// Command strata-helper does the node-side work that Strata's generated
// units call it for: attach devices, prepare overlay layers, report broken
// definitions. Its command lines are defined in helpers/contract. It is
// static and cgo-free: it runs on diskless nodes at boot, without Ceph's
// libraries or tools.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/helpers/overlay"
)

func main() {
	// udev's rule calls "rbd-namer rbdN"; it is udev's contract, not a unit's.
	if len(os.Args) == 3 && os.Args[1] == "rbd-namer" {
		if err := rbdNamer(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "strata-helper: %v\n", err)
			os.Exit(1)
		}
		return
	}
	cmd, err := contract.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata-helper: %v\n", err)
		os.Exit(2)
	}
	if err := run(cmd); err != nil {
		fmt.Fprintf(os.Stderr, "strata-helper: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func run(cmd contract.Command) error {
	switch c := cmd.(type) {
	case contract.Fail:
		for _, m := range c.Messages {
			fmt.Fprintln(os.Stderr, m)
		}
		return fmt.Errorf("the container's definition has errors (above); fix it and run 'systemctl daemon-reload'")
	case contract.OverlayPrepare:
		return overlay.Prepare(c.Dir)
	case contract.LoopAttach:
		return loopAttach(c)
	case contract.LoopDetach:
		return loopDetach(c)
	case contract.RBDMap:
		return rbdMap(context.Background(), c)
	case contract.RBDUnmap:
		return rbdUnmap(c)
	case contract.LocalWait:
		return waitBlockDevice(c.Device, localTimeout)
	}
	return fmt.Errorf("%T is not implemented on this node yet", cmd)
}
