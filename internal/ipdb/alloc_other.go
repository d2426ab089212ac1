//go:build !linux

package ipdb

func allocCodes() *[Blocks]Code { return new([Blocks]Code) }
