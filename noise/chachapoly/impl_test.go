package chachapoly

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/gotatun/gotatun/internal/cryptoimpl"
	"golang.org/x/crypto/chacha20poly1305"
)

// TestNewPicks states which implementation New returns for every
// combination of the CPU features it looks at, with and without the
// assembly built (amd64 without -tags purego) and with and without
// x/crypto forced; then checks New on this machine and says what it
// picked and why.
func TestNewPicks(t *testing.T) {
	names := []string{"AVX512F", "AVX512BW", "AVX512VL", "AVX512IFMA", "BMI2"}
	for bits := range 1 << len(names) {
		f := Features{
			AVX512F: bits&1 != 0, AVX512BW: bits&2 != 0, AVX512VL: bits&4 != 0,
			AVX512IFMA: bits&8 != 0, BMI2: bits&16 != 0,
		}
		all := bits == 1<<len(names)-1
		for _, built := range []bool{true, false} {
			for _, forced := range []bool{false, true} {
				want := ImplXCrypto
				if all && built && !forced {
					want = ImplAVX512
				}
				if got := choose(built, f, forced); got != want {
					t.Errorf("features %+v, assembly built %v, x/crypto forced %v: New picks %s, want %s",
						f, built, forced, got, want)
				}
			}
		}
	}

	var missing []string
	v := reflect.ValueOf(cpuFeatures)
	for _, n := range names {
		if !v.FieldByName(n).Bool() {
			missing = append(missing, n)
		}
	}
	switch got := Implementation(); {
	case !asmBuilt:
		t.Logf("New picks %s: the assembly is not built (not amd64, or -tags purego); the AVX-512/IFMA code cannot run here", got)
	case cryptoimpl.XCrypto():
		t.Logf("New picks %s: forced (%s)", got, cryptoimpl.Env)
	case len(missing) > 0:
		t.Logf("New picks %s: this CPU lacks %s, so the AVX-512/IFMA assembly cannot run here", got, strings.Join(missing, ", "))
	default:
		t.Logf("New picks %s: this CPU has %s", got, strings.Join(names, ", "))
	}
	checkNewType(t, Implementation())

	old := cryptoimpl.Set(true)
	defer cryptoimpl.Set(old)
	if got := Implementation(); got != ImplXCrypto {
		t.Fatalf("with x/crypto forced New picks %s", got)
	}
	checkNewType(t, ImplXCrypto)
}

// checkNewType checks that New returns the type of the implementation
// named impl.
func checkNewType(t *testing.T, impl string) {
	t.Helper()
	key := make([]byte, KeySize)
	got, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := chacha20poly1305.New(key)
	isXCrypto := reflect.TypeOf(got) == reflect.TypeOf(ref)
	if isXCrypto != (impl == ImplXCrypto) {
		t.Fatalf("Implementation() says %s but New returned a %s", impl, fmt.Sprintf("%T", got))
	}
}
