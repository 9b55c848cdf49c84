//go:build amd64 && !purego

package chachapoly

import (
	"crypto/cipher"

	"golang.org/x/sys/cpu"
)

const asmBuilt = true

// cpuFeatures is what this CPU has.
var cpuFeatures = Features{
	AVX512F:    cpu.X86.HasAVX512F,
	AVX512BW:   cpu.X86.HasAVX512BW,
	AVX512VL:   cpu.X86.HasAVX512VL,
	AVX512IFMA: cpu.X86.HasAVX512IFMA,
	BMI2:       cpu.X86.HasBMI2,
}

func newAsm(key []byte) cipher.AEAD { return newAEAD(key) }
