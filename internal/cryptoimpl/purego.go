//go:build purego

package cryptoimpl

// purego is the build tag x/crypto uses to leave out its assembly; here
// it also means x/crypto for everything.
const purego = true
