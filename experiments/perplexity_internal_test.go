package experiments

import (
	"slices"
	"strings"
	"testing"
)

func TestCheckpoints(t *testing.T) {
	for _, tc := range []struct {
		n, from int64
		k       int
		spacing string
		want    []int64
		err     string
	}{
		{4095, 260, 5, "linear", []int64{260, 1219, 2178, 3136, 4095}, ""},
		{1000, 10, 3, "log", []int64{10, 100, 1000}, ""},
		{100, 1, 1, "log", []int64{100}, ""},
		{5, 1, 10, "linear", []int64{1, 2, 3, 4, 5}, ""},
		{100, 500, 4, "linear", []int64{100}, ""},
		{100, 1, 4, "cubic", nil, "spacing"},
		{100, 0, 4, "log", nil, "from"},
	} {
		got, err := checkpoints(tc.n, tc.from, tc.k, tc.spacing)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("checkpoints(%d, %d, %d, %s) error %v, want one about %s", tc.n, tc.from, tc.k, tc.spacing, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("checkpoints(%d, %d, %d, %s) = %v, %v; want %v", tc.n, tc.from, tc.k, tc.spacing, got, err, tc.want)
		}
	}
}
