package definition

import (
	"fmt"

	"tags.cncf.io/container-device-interface/pkg/parser"
)

// cdi checks Container Device Interface names (vendor.com/class=name) by
// the CDI library's own rules. What they name is resolved on the node at
// each start, from the specs there: not here.
func (v *validator) cdi(names []string) {
	seen := map[string]int{}
	for i, n := range names {
		p := fmt.Sprintf("cdi[%d]", i)
		if _, _, _, err := parser.ParseQualifiedName(n); err != nil {
			v.errorf(p, "%q is not a CDI device name (%v): write vendor.com/class=name, e.g. nvidia.com/gpu=all", n, err)
		} else if j, dup := seen[n]; dup {
			v.errorf(p, "%q is already in cdi[%d]: give each device once", n, j)
		} else {
			seen[n] = i
		}
	}
}
