package contract

import "flag"

// ParseFlags is how Strata's programs read a command line (strata's
// commands and strata-helper's verbs alike): flags anywhere among the
// operands (`strata status demo --json` as well as `strata status --json
// demo`; the flag package alone stops at the first operand), and after
// "--" everything is an operand. It returns the operands.
func ParseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		// After "--" (which Parse consumed), everything is an operand.
		if used := len(args) - fs.NArg(); used > 0 && args[used-1] == "--" {
			return append(rest, fs.Args()...), nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
