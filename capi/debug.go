//go:build linux && gotatun_debug

package main

// #include <stdint.h>
import "C"

import "runtime"

// gotatun_debug_goroutines is a test hook, built only with the
// gotatun_debug tag: the number of goroutines, for the C test to check
// that turn-off leaves none behind.
//
//export gotatun_debug_goroutines
func gotatun_debug_goroutines() C.int32_t { return C.int32_t(runtime.NumGoroutine()) }
