package image

import (
	"fmt"
	"math/bits"
)

// ObjectLayout is how an image's bytes are spread over RADOS objects: in
// stripe units, round-robin over StripeCount objects of ObjectSize bytes.
// At boot every node reads the same few hot blocks; smaller objects, or
// striping, spread them over more objects and so more PGs and OSDs.
type ObjectLayout struct {
	// ObjectSize in bytes: a power of two from 4 KiB to 32 MiB. 0: 4 MiB.
	ObjectSize uint64
	// StripeUnit in bytes: a power of two that divides the object size,
	// at least 4 KiB. 0: the object size (no striping).
	StripeUnit uint64
	// StripeCount is how many objects a stripe spans. 0: 1.
	StripeCount uint64
}

// FancyStripingKernel is the first Linux whose krbd maps images with a
// stripe unit other than the object size or a stripe count above 1 (the
// libceph striping framework, 2018); older kernels refuse to map them.
const FancyStripingKernel = "4.17"

// MinObjectSize and MaxObjectSize bound what librbd creates (orders 12
// to 25).
const (
	MinObjectSize = 4 << 10
	MaxObjectSize = 32 << 20
)

func (l ObjectLayout) objectSize() uint64 {
	if l.ObjectSize == 0 {
		return ObjectSize
	}
	return l.ObjectSize
}

func (l ObjectLayout) stripeUnit() uint64 {
	if l.StripeUnit == 0 {
		return l.objectSize()
	}
	return l.StripeUnit
}

func (l ObjectLayout) stripeCount() uint64 {
	if l.StripeCount == 0 {
		return 1
	}
	return l.StripeCount
}

// Fancy says whether the layout needs the striping feature (and so Linux
// FancyStripingKernel or later on every node that maps the image).
func (l ObjectLayout) Fancy() bool {
	return l.stripeUnit() != l.objectSize() || l.stripeCount() > 1
}

// order is the object size as librbd takes it: log2 of the bytes.
func (l ObjectLayout) order() uint64 {
	return uint64(bits.TrailingZeros64(l.objectSize()))
}

// Validate reports a layout librbd would refuse, saying what would do.
func (l ObjectLayout) Validate() error {
	os := l.objectSize()
	if os&(os-1) != 0 || os < MinObjectSize || os > MaxObjectSize {
		return fmt.Errorf("object size %s: want a power of two from 4K to 32M", FormatBytes(int64(os)))
	}
	su := l.stripeUnit()
	if su&(su-1) != 0 || su < MinObjectSize || su > os {
		return fmt.Errorf("stripe unit %s: want a power of two from 4K up to the object size (%s)", FormatBytes(int64(su)), FormatBytes(int64(os)))
	}
	if c := l.stripeCount(); c > 1<<16 {
		return fmt.Errorf("stripe count %d: want 1 to 65536", c)
	}
	return nil
}

// String describes the layout for messages: "4 MiB objects" or
// "1 MiB objects, 64 KiB stripe unit over 8".
func (l ObjectLayout) String() string {
	s := FormatBytes(int64(l.objectSize())) + " objects"
	if l.Fancy() {
		s += fmt.Sprintf(", %s stripe unit over %d", FormatBytes(int64(l.stripeUnit())), l.stripeCount())
	}
	return s
}

// Bytes is the object size, Unit the stripe unit and Count the stripe
// count, defaults applied.
func (l ObjectLayout) Bytes() uint64 { return l.objectSize() }
func (l ObjectLayout) Unit() uint64  { return l.stripeUnit() }
func (l ObjectLayout) Count() uint64 { return l.stripeCount() }
