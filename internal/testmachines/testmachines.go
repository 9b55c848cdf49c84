// Package testmachines reads Maybenot machine strings out of the
// repository's test data files (maybenot/testdata/machines-*.txt), for
// tests and benchmarks.
package testmachines

import (
	"fmt"
	"os"
	"strings"
)

// MullvadSource is the comment that marks Mullvad's DAITA machines in
// machines-public.txt.
const MullvadSource = "mullvadvpn-app/dist-assets/maybenot_machines"

// ByComment returns the machines of file whose comment line (the '#'
// line before them) contains substr, in file order.
func ByComment(file, substr string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []string
	match := false
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#"):
			match = strings.Contains(line, substr)
		case match && line != "":
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no machine under a comment containing %q", file, substr)
	}
	return out, nil
}

// Mullvad returns the three Mullvad DAITA machines of machines-public.txt.
func Mullvad(file string) ([]string, error) {
	ms, err := ByComment(file, MullvadSource)
	if err == nil && len(ms) != 3 {
		err = fmt.Errorf("%s: %d Mullvad machines, want 3", file, len(ms))
	}
	return ms, err
}
