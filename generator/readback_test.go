package generator_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/generator"
	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/units/readback"
)

// readBack reads every generated file the way systemd reads it and
// returns the values systemd (and, for helper command lines, the helper)
// would see: each setting's value after specifiers, each word of Exec lines
// and space-separated lists, and each string the helper's own contract
// parser reads from its command line. Settings the administrator wrote in
// unit/service are systemd syntax (specifiers and all), so they count as
// written. An error is anything systemd would read other than as meant: a
// specifier, a variable, an Exec prefix, a second command, bad quoting.
func readBack(out *generator.Output, defs ...*definition.Definition) (map[string]bool, error) {
	values := map[string]bool{}
	for name, data := range out.Files {
		opts, err := readback.Options(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		for _, o := range opts {
			if err := readOption(values, name, o, defs); err != nil {
				return nil, fmt.Errorf("%s: %s=%s: %v", name, o.Name, o.Value, err)
			}
		}
	}
	return values, nil
}

func readOption(values map[string]bool, file string, o *readback.Option, defs []*definition.Definition) error {
	if rawSetting(file, o, defs) {
		values[o.Value] = true
		return nil
	}
	v, err := readback.Specifiers(o.Value)
	if err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(o.Name, "Exec"):
		argv, err := readback.Exec(v)
		if err != nil {
			return err
		}
		for _, w := range argv {
			values[w] = true
		}
		if len(argv) > 1 && argv[0] == layout.HelperPath {
			return readHelper(values, argv)
		}
	case o.Name == "RequiresMountsFor":
		words, err := readback.List(v)
		if err != nil {
			return err
		}
		for _, w := range words {
			values[w] = true
		}
	default:
		values[v] = true
	}
	return nil
}

// rawSetting tells a container drop-in's setting that came from the
// definition's unit or service maps, as the administrator wrote it.
func rawSetting(file string, o *readback.Option, defs []*definition.Definition) bool {
	for _, d := range defs {
		if !strings.HasPrefix(file, layout.ContainerUnit(d.Name)+".d/") {
			continue
		}
		src := d.Container.Unit
		if o.Section == "Service" {
			src = d.Container.Service
		}
		if slices.Contains(src[o.Name], o.Value) {
			return true
		}
	}
	return false
}

// readHelper parses a helper command line with the helper's own parser:
// the command must come back as the same argv (nothing lost or added), and
// every string it holds is a value read back.
func readHelper(values map[string]bool, argv []string) error {
	cmd, err := contract.Parse(argv[1:])
	if err != nil {
		return err
	}
	if again := contract.Argv(cmd); !slices.Equal(again, argv) {
		return fmt.Errorf("the helper reads %q as %#v, which is %q", argv, cmd, again)
	}
	collectStrings(reflect.ValueOf(cmd), values)
	return nil
}

func collectStrings(v reflect.Value, values map[string]bool) {
	switch v.Kind() {
	case reflect.String:
		values[v.String()] = true
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			collectStrings(v.Index(i), values)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			collectStrings(v.Field(i), values)
		}
	}
}
