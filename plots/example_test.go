package plots_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"kvcascade/plots"
)

// A passkey heat-map table for one policy, written as PNG, SVG and PDF at
// the figure's own size.
func ExamplePasskeyTable() {
	dir, err := os.MkdirTemp("", "plots-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	accuracy := [][]float64{ // rows: lengths; columns: depth bins 0–20 % … 80–100 %
		{100, 100, 100, 100, 100},
		{100, 100, 96, 97, 100},
		{23, 21, 33, 45, 88},
	}
	var cells []plots.PasskeyCell
	for r, length := range []int{32 << 10, 128 << 10, 1 << 20} {
		for bin, acc := range accuracy[r] {
			cells = append(cells, plots.PasskeyCell{Policy: "cascade", Length: length, DepthBin: bin, Accuracy: acc, N: 20})
		}
	}
	fig, err := plots.PasskeyTable(cells, "cascade", 5)
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range []string{"passkey.png", "passkey.svg", "passkey.pdf"} {
		if err := plots.Save(fig, filepath.Join(dir, name), 0, 0); err != nil {
			log.Fatal(err)
		}
		fmt.Println("wrote", name)
	}
	// Output:
	// wrote passkey.png
	// wrote passkey.svg
	// wrote passkey.pdf
}

// Latency against context length on log–log axes, with linear and
// quadratic guide lines through the first point of the first series.
func ExampleScaling() {
	series := []plots.Series{
		{Policy: "cascade", Points: []plots.Point{{X: 32 << 10, Y: 1.6}, {X: 128 << 10, Y: 6.4}, {X: 1 << 20, Y: 51}}},
		{Policy: "full", Points: []plots.Point{{X: 32 << 10, Y: 1.4}, {X: 128 << 10, Y: 12}, {X: 1 << 20, Y: 350}}},
	}
	fig, err := plots.Scaling(plots.PrefillTime, series)
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "plots-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := plots.Save(fig, filepath.Join(dir, "prefill.svg"), 0, 0); err != nil {
		log.Fatal(err)
	}
	fmt.Println(plots.PrefillTime.Label())
	// Output: Prefill time (s)
}

func ExampleFormatTokens() {
	for _, n := range []int64{32768, 65536, 1 << 20, 100_000, 12_345} {
		fmt.Println(plots.FormatTokens(n))
	}
	// Output:
	// 32K
	// 64K
	// 1M
	// 100K
	// 12.3K
}
