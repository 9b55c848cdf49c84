//go:build !race

package multihop

const raceEnabled = false
