//go:build linux || darwin || freebsd || netbsd || openbsd

package ipdb

import (
	"fmt"
	"os"
	"syscall"
)

const canMmap = true

func mmapTable(f *os.File, h header) (*Table, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot stat ip table: %w", err)
	}
	size := st.Size()
	if size < headerSize || size > 1<<30 {
		return nil, formatErr("file is %d bytes, not an uncompressed table", size)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("cannot map ip table: %w", err)
	}
	t, err := fromMapped(b, h)
	if err != nil {
		syscall.Munmap(b)
		return nil, err
	}
	t.release = func() error { return syscall.Munmap(b) }
	return t, nil
}
