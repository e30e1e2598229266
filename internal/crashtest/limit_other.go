//go:build !unix

package crashtest

import "errors"

const supported = false

func setFileSizeLimit(uint64) error { return errors.New("not supported") }
