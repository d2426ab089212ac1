//go:build linux

package ipdb

import (
	"syscall"
	"unsafe"
)

const (
	hugePage      = 2 << 20
	madvHugePage  = 14 // MADV_HUGEPAGE
	madvCollapse  = 25 // MADV_COLLAPSE, Linux 6.1+
	codesPerHuge  = hugePage / 2
	allocSlackLen = Blocks + codesPerHuge
)

// allocCodes returns a zeroed code array aligned to 2 MiB and marked for
// transparent huge pages. Random lookups touch a random 4 KiB page of the
// 32 MiB array each time: with small pages nearly every lookup also misses
// the TLB (8192 pages; a page walk that under virtualization costs several
// memory accesses), while 2 MiB pages need 16 TLB entries. The Go heap does
// not ask for huge pages itself, and on kernels with THP in "madvise" mode it
// gets none. The array stays an ordinary Go allocation (the GC owns its
// lifetime); only its kernel paging advice changes. Both calls are best
// effort: without THP the array works the same, with small pages.
func allocCodes() *[Blocks]Code {
	s := make([]Code, allocSlackLen)
	off := 0
	if rem := uintptr(unsafe.Pointer(&s[0])) % hugePage; rem != 0 {
		off = int(hugePage-rem) / 2
	}
	codes := (*[Blocks]Code)(s[off : off+Blocks])
	b := unsafe.Slice((*byte)(unsafe.Pointer(codes)), tableBytes)
	if syscall.Madvise(b, madvHugePage) == nil {
		// Memory the allocator had already touched keeps its small pages
		// until collapsed; fresh memory gets huge pages on first write.
		_ = syscall.Madvise(b, madvCollapse)
	}
	return codes
}
