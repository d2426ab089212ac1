//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package ipdb

import (
	"errors"
	"os"
)

const canMmap = false

func mmapTable(*os.File, header) (*Table, error) {
	return nil, errors.New("memory mapping is not supported here")
}
