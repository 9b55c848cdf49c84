//go:build !amd64 || purego

package chachapoly

func ourPaths() []aeadPath {
	return []aeadPath{{
		name: "avx512-ifma",
		skip: "the assembly is not built (not amd64, or -tags purego): New returns x/crypto's AEAD here",
	}}
}
