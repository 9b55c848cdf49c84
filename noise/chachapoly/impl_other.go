//go:build !amd64 || purego

package chachapoly

import "crypto/cipher"

// Without the amd64 assembly New always returns x/crypto's AEAD.
const asmBuilt = false

var cpuFeatures Features

func newAsm([]byte) cipher.AEAD {
	panic("chachapoly: no assembly in this build")
}
