//go:build !purego

package cryptoimpl

const purego = false
