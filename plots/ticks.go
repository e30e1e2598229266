package plots

import (
	"math"
	"strconv"

	"gonum.org/v1/plot"
)

// FormatTokens writes a token count the way ML papers do: exact multiples
// of 2^20 and 2^10 as "1M" and "32K" (so 65536 is "64K"), then exact
// multiples of 10^6 and 10^3 as "2M" and "100K", counts below 1000 as
// digits, and anything else rounded to three significant digits with a
// decimal K or M ("12.3K", "1.5M").
func FormatTokens(n int64) string {
	if n < 0 {
		return "-" + FormatTokens(-n)
	}
	switch {
	case n == 0:
		return "0"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	case n >= 1<<20 && n%(1<<19) == 0: // 1.5M, 2.5M
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + "M"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "K"
	case n >= 1<<10 && n < 1<<20 && n%(1<<9) == 0: // 1.5K, 2.5K
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', -1, 64) + "K"
	case n%1_000_000 == 0:
		return strconv.FormatInt(n/1_000_000, 10) + "M"
	case n%1000 == 0 && n < 1_000_000:
		return strconv.FormatInt(n/1000, 10) + "K"
	case n < 1000:
		return strconv.FormatInt(n, 10)
	case n < 999_500:
		return strconv.FormatFloat(roundSig(float64(n)/1e3, 3), 'f', -1, 64) + "K"
	}
	return strconv.FormatFloat(roundSig(float64(n)/1e6, 3), 'f', -1, 64) + "M"
}

// roundSig rounds x to sig significant digits.
func roundSig(x float64, sig int) float64 {
	if x == 0 {
		return 0
	}
	p := math.Pow(10, float64(sig)-math.Ceil(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}

// formatNumber writes an axis value compactly, without an exponent for
// the magnitudes figures use.
func formatNumber(v float64) string {
	if a := math.Abs(v); a != 0 && (a < 1e-4 || a >= 1e7) {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	return strconv.FormatFloat(roundSig(v, 6), 'f', -1, 64)
}

// maxLabels is how many labelled ticks an axis gets at most.
const maxLabels = 7

// tokenLogTicks is a plot.Ticker for a log axis of token counts: labels
// at powers of two written by FormatTokens (every second or fourth power
// when the range is wide), minor ticks at the powers between. Ranges that
// hold fewer than two powers of two fall back to logTicks.
func tokenLogTicks(min, max float64) []plot.Tick {
	lo, hi := int(math.Ceil(math.Log2(min)-1e-9)), int(math.Floor(math.Log2(max)+1e-9))
	if hi-lo < 1 {
		return logTicks(min, max)
	}
	stride := 1
	for (hi-lo)/stride+1 > maxLabels {
		stride *= 2
	}
	var ticks []plot.Tick
	for e := lo; e <= hi; e++ {
		v := math.Ldexp(1, e)
		t := plot.Tick{Value: v}
		if (e-lo)%stride == 0 {
			if e >= 0 {
				t.Label = FormatTokens(int64(v))
			} else {
				t.Label = formatNumber(v)
			}
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// logTicks is a plot.Ticker for a log axis of ordinary numbers: labels at
// powers of ten, or at 1-2-5 or 1…9 times a power of ten when the range is
// too narrow for two powers of ten, and minor ticks at the integer
// multiples of each power of ten.
func logTicks(min, max float64) []plot.Tick {
	if !(min > 0) || !(max > min) {
		return nil
	}
	loExp, hiExp := int(math.Floor(math.Log10(min))), int(math.Ceil(math.Log10(max)))
	inRange := func(v float64) bool { return v >= min*(1-1e-9) && v <= max*(1+1e-9) }
	for _, mantissas := range [][]float64{{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}} {
		var labelled []float64
		for e := loExp; e <= hiExp; e++ {
			for _, m := range mantissas {
				if v := m * math.Pow(10, float64(e)); inRange(v) {
					labelled = append(labelled, v)
				}
			}
		}
		if len(labelled) < 2 {
			continue
		}
		stride := 1
		for (len(labelled)-1)/stride+1 > maxLabels {
			stride++
		}
		var ticks []plot.Tick
		for i, v := range labelled {
			t := plot.Tick{Value: v}
			if i%stride == 0 {
				t.Label = formatNumber(v)
			}
			ticks = append(ticks, t)
		}
		for e := loExp; e <= hiExp; e++ {
			for m := 1; m <= 9; m++ {
				v := float64(m) * math.Pow(10, float64(e))
				if inRange(v) && !containsTick(ticks, v) {
					ticks = append(ticks, plot.Tick{Value: v})
				}
			}
		}
		return ticks
	}
	// Narrower than a factor of two: plain linear ticks, which a log axis
	// places correctly.
	return plot.DefaultTicks{}.Ticks(min, max)
}

func containsTick(ts []plot.Tick, v float64) bool {
	for _, t := range ts {
		if math.Abs(t.Value-v) <= 1e-9*math.Abs(v) {
			return true
		}
	}
	return false
}

// linearTicks is a plot.Ticker for a linear axis: labels every 1, 2, 2.5
// or 5 times a power of ten, the finest such step that gives at most
// seven labels, and unlabelled minor ticks between.
func linearTicks(min, max float64) []plot.Tick {
	span := max - min
	if !(span > 0) || math.IsInf(span, 0) {
		return nil
	}
	mag := math.Pow(10, math.Floor(math.Log10(span))-1)
	var step float64
search:
	for ; ; mag *= 10 {
		for _, m := range []float64{1, 2, 2.5, 5} {
			if step = m * mag; math.Floor(max/step)-math.Ceil(min/step)+1 <= maxLabels {
				break search
			}
		}
	}
	minor := step / 2
	if math.Abs(step-2.5*mag) < 1e-9*step {
		minor = step / 5
	}
	var ticks []plot.Tick
	for i := math.Ceil(min/minor - 1e-9); i*minor <= max+1e-9*span; i++ {
		v := i * minor
		t := plot.Tick{Value: v}
		if r := math.Abs(math.Remainder(v, step)); r < 1e-6*step {
			t.Label = formatNumber(v)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// tokenLinearTicks is a plot.Ticker for a linear axis of token positions:
// labels every power-of-two step (written by FormatTokens) chosen so that
// there are at most five, and unlabelled minor ticks halfway between.
func tokenLinearTicks(min, max float64) []plot.Tick {
	span := max - min
	if !(span > 0) {
		return nil
	}
	step := 1.0
	for span/step > 4.0001 {
		step *= 2
	}
	var ticks []plot.Tick
	for i := math.Ceil(min/step - 1e-9); i*step <= max+1e-9*span; i++ {
		v := i * step
		ticks = append(ticks, plot.Tick{Value: v, Label: FormatTokens(int64(math.Round(v)))})
		if h := v + step/2; step >= 2 && h <= max {
			ticks = append(ticks, plot.Tick{Value: h})
		}
	}
	return ticks
}

// unlabelled wraps a ticker and drops its labels, keeping the tick marks:
// for panels that share an axis with the panel below.
func unlabelled(t plot.Ticker) plot.Ticker {
	return plot.TickerFunc(func(min, max float64) []plot.Tick {
		ts := t.Ticks(min, max)
		for i := range ts {
			ts[i].Label = ""
		}
		return ts
	})
}
