//go:build !race

package model_test

// raceEnabled is true when tests run under the race detector.
const raceEnabled = false
