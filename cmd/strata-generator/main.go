// Command strata-generator is Strata's systemd generator: at boot and on
// every daemon-reload it turns the container definitions in /etc/strata,
// /run/strata/definitions and /usr/lib/strata into units. See
// systemd.generator(7) and strata-generator(8).
//
// It reads only definition files and writes only into its output
// directory; it talks to no one (no network, no D-Bus) and never blocks.
package main

import (
	"io"
	"os"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/helpers/state"
	"github.com/strata-project/strata/internal/layout"
)

func main() {
	log := newLogger()
	code := run(os.Args[1:], os.Stdout, log)
	log.close()
	os.Exit(code)
}

func run(args []string, stdout io.Writer, log *logger) int {
	dryrun := len(args) > 0 && (args[0] == "--dryrun" || args[0] == "-dryrun")
	if dryrun {
		args = args[1:]
	}
	if !dryrun && len(args) != 1 && len(args) != 3 {
		log.printf(3, "usage: %s NORMAL-DIR [EARLY-DIR LATE-DIR] | --dryrun", generator.Name)
		return 2
	}

	// Settings newer than the node's systemd are refused (placeholders say
	// which and why); an unknown version refuses nothing.
	generator.DetectSystemd()
	r := generator.Run(definition.SearchPath())
	if err := generator.Systemd.Err(); err != nil {
		log.printf(4, "%v: settings newer than systemd %d are not checked", err, generator.MinimumSystemd)
	}
	// What runs since boot keeps its teardown whatever happened to its
	// definition: the state records name it (directory listings on
	// /run, nothing more).
	store := state.Store{Dir: layout.StateDir}
	started, err := store.ContainerNames()
	if err != nil {
		log.printf(4, "reading %s: %v", layout.StateDir, err)
	}
	attached, err := store.AttachmentIDs()
	if err != nil {
		log.printf(4, "reading %s: %v", layout.StateDir, err)
	}
	r.Retire(started, attached)
	for _, p := range r.Problems {
		level := 3
		if p.Severity == definition.Warning {
			level = 4
		}
		log.printf(level, "%s", p)
	}

	if dryrun {
		if err := r.Output.Print(stdout); err != nil {
			log.printf(3, "%v", err)
			return 1
		}
	} else if err := replay(r.Output, log).Write(args[0]); err != nil {
		log.printf(3, "%v", err)
		return 1
	}
	if r.Problems.HasErrors() {
		return 1
	}
	return 0
}

// replay adds to out the unit that gives the journal, at boot, what was
// logged where no one reads it (see logger.unheard).
func replay(out *generator.Output, log *logger) *generator.Output {
	if log.unheard == nil || len(*log.unheard) == 0 {
		return out
	}
	if err := out.AddLogReplay(*log.unheard); err != nil {
		log.printf(3, "%v", err)
	}
	return out
}
