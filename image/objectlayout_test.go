package image

import (
	"strings"
	"testing"
)

func TestObjectLayout(t *testing.T) {
	for _, c := range []struct {
		l     ObjectLayout
		order uint64
		fancy bool
		str   string
	}{
		{ObjectLayout{}, 22, false, "4.0 MiB objects"},
		{ObjectLayout{ObjectSize: 1 << 20}, 20, false, "1.0 MiB objects"},
		{ObjectLayout{ObjectSize: 1 << 20, StripeUnit: 1 << 20, StripeCount: 1}, 20, false, "1.0 MiB objects"},
		{ObjectLayout{ObjectSize: 4 << 20, StripeUnit: 64 << 10, StripeCount: 8}, 22, true, "4.0 MiB objects, 64.0 KiB stripe unit over 8"},
		{ObjectLayout{StripeCount: 4}, 22, true, "4.0 MiB objects, 4.0 MiB stripe unit over 4"},
		{ObjectLayout{ObjectSize: 32 << 20}, 25, false, "32.0 MiB objects"},
		{ObjectLayout{ObjectSize: 4 << 10}, 12, false, "4.0 KiB objects"},
	} {
		if err := c.l.Validate(); err != nil {
			t.Errorf("%+v: %v", c.l, err)
		}
		if c.l.order() != c.order || c.l.Fancy() != c.fancy || c.l.String() != c.str {
			t.Errorf("%+v: order %d fancy %v %q; want %d %v %q", c.l, c.l.order(), c.l.Fancy(), c.l.String(), c.order, c.fancy, c.str)
		}
	}
	for _, c := range []struct {
		l    ObjectLayout
		want string
	}{
		{ObjectLayout{ObjectSize: 3 << 20}, "object size 3.0 MiB: want a power of two"},
		{ObjectLayout{ObjectSize: 64 << 20}, "from 4K to 32M"},
		{ObjectLayout{ObjectSize: 2 << 10}, "from 4K to 32M"},
		{ObjectLayout{StripeUnit: 8 << 20}, "stripe unit 8.0 MiB: want a power of two from 4K up to the object size (4.0 MiB)"},
		{ObjectLayout{StripeUnit: 3 << 10}, "stripe unit"},
		{ObjectLayout{StripeUnit: 96 << 10}, "stripe unit"},
		{ObjectLayout{StripeCount: 1<<16 + 1}, "stripe count 65537"},
	} {
		if err := c.l.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.l, err, c.want)
		}
	}
}
