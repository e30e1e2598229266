//go:build race

package model_test

// raceEnabled is true when tests run under the race detector, whose
// sync.Pool drops items on purpose (so allocation counts are meaningless).
const raceEnabled = true
